#!/usr/bin/env bash
# Runs `extentfs exercise` for a fixed budget with fixed seeds at block sizes 512, 1024, 4096 and
# 65536: in-process against the engine (deterministic), in-process with two threads reading all
# the time (racing reclaim against the operations, as kernel readahead does through a mount; not
# deterministic), and through a real mount (needs /dev/fuse and root or fusermount3). A 256 KiB
# page cache keeps reclaim running all the time. Failures leave their replay files (full and
# shrunk) in $EXERCISE_OUT. Ends with "N passed, M failed"; exits 1 if any run failed.
#
#   scripts/exercise.sh [--in-process-only | --mount-only] [extra extentfs exercise options...]
#
# Extra options go to every run, e.g. --ops-without-ioctls while the FUSE adapter does not serve
# the extentfs ioctls yet. Budgets: EXERCISE_OPS_IN_PROCESS (default 20000), EXERCISE_OPS_MOUNT
# (default 1500). EXTENTFS names a prebuilt binary; otherwise a release build is made.
set -u

cd "$(dirname "$0")/.."

modes="in-process racing mount"
case "${1:-}" in
    --in-process-only) modes="in-process racing"; shift ;;
    --mount-only) modes="mount"; shift ;;
esac

ops_in_process=${EXERCISE_OPS_IN_PROCESS:-20000}
ops_mount=${EXERCISE_OPS_MOUNT:-1500}
out=${EXERCISE_OUT:-.build/exercise}
mkdir -p "$out"

if [ -z "${EXTENTFS:-}" ]; then
    swift build -c release --product extentfs >&2 || { echo "0 passed, 1 failed (build)"; exit 1; }
    EXTENTFS=$(swift build -c release --show-bin-path)/extentfs
fi

passed=0
failed=0
failures=()
for mode in $modes; do
    for block_size in 512 1024 4096 65536; do
        # A fixed seed per block size and mode, so a failure here is a failure everywhere.
        case $mode in
            mount)
                seed=$((block_size + 7))
                mode_options=(--mount --ops "$ops_mount") ;;
            racing)
                seed=$((block_size + 3))
                mode_options=(--in-process --ops "$ops_in_process" --background-readers 2) ;;
            *)
                seed=$block_size
                mode_options=(--in-process --ops "$ops_in_process") ;;
        esac
        replay="$out/$mode-bs$block_size-seed$seed.json"
        echo "== $mode, block size $block_size, seed $seed"
        if "$EXTENTFS" exercise "${mode_options[@]}" --block-size "$block_size" --seed "$seed" \
            --cache-size 256K --replay-out "$replay" "$@"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            if [ -e "$replay" ]; then
                failures+=("$mode block size $block_size (replay: $replay)")
            else
                failures+=("$mode block size $block_size (no replay file: the run died; rerun the command above)")
            fi
        fi
    done
done

for failure in "${failures[@]}"; do echo "failed: $failure"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
