#!/usr/bin/env bash
# fsync cost against the number of files on the volume (the durability issue's figures), side by
# side with the host directory, in one run: p50 and p99 of fsync after a 4 KiB overwrite, and of
# creating a 100-byte file and fsyncing it and its directory, on extentfs volumes holding FILES
# files (in directories of 1,000), and SQLite commits per second (WAL, synchronous=FULL).
# The image and the host directory are on the same disk (WORK_DIR). Release build.
# SQLite runs SQLITE_REPEAT times on each, alternating host and extentfs (the disk here is shared
# and noisy: a run of either can fall tenfold), and the median of the runs' ratios is the figure.
# Overridable: FILES ("0 100000 1000000"), ROUNDS (200), SQLITE_SECONDS (10), SQLITE_REPEAT (5),
# IMAGE_SIZE (16G), EXTENTFS_BIN, WORK_DIR.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

read -r -a FILE_COUNTS <<<"${FILES:-0 100000 1000000}"
ROUNDS="${ROUNDS:-200}"
SQLITE_SECONDS="${SQLITE_SECONDS:-10}"
SQLITE_REPEAT="${SQLITE_REPEAT:-5}"
IMAGE_SIZE="${IMAGE_SIZE:-16G}"
BIN="$(extentfs_bin release)"
PY="$REPO_ROOT/scripts/lib/fsync_bench.py"

bash "$REPO_ROOT/scripts/install-deps.sh"
if [[ -z "${EXTENTFS_BIN:-}" ]]; then
    log "building extentfs (release)"
    (cd "$REPO_ROOT" && swift build -c release)
fi

WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-bench-fsync.XXXXXX)}"
MNT="$WORK/mnt"
HOST="$WORK/host"
mkdir -p "$MNT" "$HOST"
cleanup() {
    if is_mounted "$MNT"; then "$BIN" umount "$MNT" || force_unmount "$MNT"; fi
    rm -rf "$WORK/extentfs.img" "$HOST"
}
trap cleanup EXIT

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

declare -A RESULT
log "host directory ($HOST)"
RESULT[host]="$(python3 "$PY" fsync "$HOST" "$ROUNDS")"

for count in "${FILE_COUNTS[@]}"; do
    log "extentfs with $count files"
    rm -f "$WORK/extentfs.img"
    "$BIN" mkfs "$WORK/extentfs.img" --size "$IMAGE_SIZE" >/dev/null
    "$BIN" mount "$WORK/extentfs.img" "$MNT"
    if ((count > 0)); then
        populated="$(python3 "$PY" populate "$MNT" "$count")"
        log "  populated in $(field "$populated" seconds) s"
    fi
    RESULT[$count]="$(python3 "$PY" fsync "$MNT" "$ROUNDS")"
    if [[ "$count" == "${FILE_COUNTS[0]}" ]]; then
        SQLITE_RUNS=()
        for ((run = 1; run <= SQLITE_REPEAT; run++)); do
            rm -f "$HOST"/bench.sqlite* "$MNT"/bench.sqlite*
            host_run="$(field "$(python3 "$PY" sqlite "$HOST" "$SQLITE_SECONDS")" commits_per_second)"
            efs_run="$(field "$(python3 "$PY" sqlite "$MNT" "$SQLITE_SECONDS")" commits_per_second)"
            log "  SQLite run $run: host $host_run, extentfs $efs_run commits/s"
            SQLITE_RUNS+=("$host_run:$efs_run")
        done
    fi
    "$BIN" umount "$MNT"
done

printf '\nfsync latency in ms (%s rounds each; release build; %s)\n' "$ROUNDS" "$(nproc) cores"
printf '%-28s %14s %14s %14s %14s\n' "" "overwrite p50" "overwrite p99" "create p50" "create p99"
row() {
    local name="$1" json="$2"
    printf '%-28s %14s %14s %14s %14s\n' "$name" "$(field "$json" overwrite_p50)" "$(field "$json" overwrite_p99)" \
        "$(field "$json" create_p50)" "$(field "$json" create_p99)"
}
row "host directory" "${RESULT[host]}"
for count in "${FILE_COUNTS[@]}"; do row "extentfs, $count files" "${RESULT[$count]}"; done
first="${FILE_COUNTS[0]}"
last="${FILE_COUNTS[${#FILE_COUNTS[@]}-1]}"
python3 - "${RESULT[$first]}" "${RESULT[$last]}" "$first" "$last" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for key in ("overwrite_p50", "overwrite_p99", "create_p50", "create_p99"):
    print("%-14s %s files / %s files: %.2fx" % (key, sys.argv[4], sys.argv[3], b[key] / max(a[key], 1e-6)))
PY
python3 - "$SQLITE_SECONDS" "${SQLITE_RUNS[@]}" <<'PY'
import statistics, sys
runs = [tuple(float(x) for x in pair.split(":")) for pair in sys.argv[2:]]
print("\nSQLite commits/s (WAL, synchronous=FULL; %d runs of %s s each, alternating):" % (len(runs), sys.argv[1]))
for index, (host, efs) in enumerate(runs, 1):
    print("  run %d: host %8.1f  extentfs %8.1f  ratio %.2f" % (index, host, efs, efs / max(host, 1e-6)))
print("median: host %.1f, extentfs %.1f; median of the runs' ratios %.2f" % (
    statistics.median(h for h, _ in runs), statistics.median(e for _, e in runs),
    statistics.median(e / max(h, 1e-6) for h, e in runs)))
PY
