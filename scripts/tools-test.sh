#!/usr/bin/env bash
# Unmodified tools on a fresh extentfs mount, through the preload library.
#
# For each block size (BLOCK_SIZES, default "4096 1024 65536") a fresh image is made and mounted,
# and xfs_io (fpunch, fzero, fcollapse, finsert, funshare, falloc, reflink, dedupe, fiemap, seek),
# fallocate(1) (-c -i -p -z -n -l), cp --reflink=always and duperemove -d run on it with
# LD_PRELOAD=libExtentFSPreload.so, exactly as a user would run them. After every step the files
# are compared with scripts/lib/space_model.py, a model of what XFS does: contents byte for byte,
# sizes, holes (SEEK_DATA/SEEK_HOLE), the extent map (FIEMAP: mapped, unwritten, shared) and
# st_blocks; clone and dedupe are also checked through free space (statfs). Then the image is
# unmounted, checked with fsck, mounted again and every file compared with the model once more.
# Calls that must fail (misaligned collapse, insert at EOF, clone across filesystems, ...) must
# fail with the errno XFS gives, and the same tools on a file outside extentfs must behave exactly
# as without the preload.
#
# Every check prints "PASS: ..." or "FAIL: ..."; the last line is "N passed, M failed" and the
# exit status is non-zero if anything failed. A missing tool is an error, never a skip.
#
# Environment: EXTENTFS_BUILD=debug|release, EXTENTFS_BIN, EXTENTFS_PRELOAD, BLOCK_SIZES,
# IMAGE_SIZE (default 1G), BIG_SIZE (cp --reflink file, default 64M), DUPE_SIZE (duperemove
# files, default 16M), TOOL_TIMEOUT (seconds per tool run, default 600), WORK_DIR.
#
# TOOLS_TEST_DIR=/some/dir runs the same checks in an existing directory instead of on fresh
# mounts (no mkfs, remount or fsck), at that filesystem's block size. On XFS that validates the
# expectations themselves: XFS is the reference, and the preload must leave it alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/mount.sh"

BLOCK_SIZES="${BLOCK_SIZES:-4096 1024 65536}"
BIG_SIZE="${BIG_SIZE:-64M}"
DUPE_SIZE="${DUPE_SIZE:-16M}"
TOOL_TIMEOUT="${TOOL_TIMEOUT:-600}"
MODEL="$REPO_ROOT/scripts/lib/space_model.py"
REFERENCE_DIR="${TOOLS_TEST_DIR:-}"

passed=0
failed=0
pass() { printf 'PASS: %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; failed=$((failed + 1)); }
# Runs last, after the mounts are gone, so that the summary is the last line even when the script
# stops early (a missing tool, a mount that fails): that counts as a failure.
efs_final() {
    if (($1 != 0 && failed == 0)); then fail "stopped early (exit $1) before every check ran"; fi
    echo "$passed passed, $failed failed"
    ((failed == 0))
}
efs_require xfs_io fallocate cp duperemove python3 cmp stat timeout head sha256sum findmnt diff
if [[ -n "$REFERENCE_DIR" ]]; then
    [[ -d "$REFERENCE_DIR" ]] || die "TOOLS_TEST_DIR=$REFERENCE_DIR is not a directory"
    REFERENCE_DIR="$(realpath "$REFERENCE_DIR")"
    efs_build
    EFS_WORK="${WORK_DIR:-$(mktemp -d /var/tmp/extentfs-tools.XXXXXX)}"
    efs_on_exit() { rm -rf "${DIR:-/nonexistent}"; }
else
    efs_init tools
fi
log "preload library: $EFS_PRELOAD"


# Runs a checker, shows its PASS/FAIL lines and counts them; a checker that dies is a failure too.
tally() {
    local out status=0 p f
    out="$("$@" 2>&1)" || status=$?
    [[ -z "$out" ]] || printf '%s\n' "$out"
    p=$(grep -c '^PASS: ' <<<"$out" || true)
    f=$(grep -c '^FAIL: ' <<<"$out" || true)
    passed=$((passed + p))
    failed=$((failed + f))
    if ((status != 0 && f == 0)); then fail "checker exited with status $status: $*"; fi
}

model() { python3 "$MODEL" --state "$STATE" --bs "$BS" "$@"; }
# The checker reads extent maps with FS_IOC_FIEMAP, so it runs under the preload like any program.
model_check() { tally env LD_PRELOAD="$EFS_PRELOAD" python3 "$MODEL" --state "$STATE" check "$@"; }

# Runs a command in $DIR under the preload: stdout in OUT, stderr in ERR, exit status in STATUS.
run_tool() {
    local errfile="$EFS_WORK/stderr"
    STATUS=0
    OUT="$(cd "$DIR" && timeout "$TOOL_TIMEOUT" env LD_PRELOAD="$EFS_PRELOAD" "$@" 2>"$errfile")" || STATUS=$?
    ERR="$(cat "$errfile")"
    if ((STATUS == 124)); then ERR="timed out after ${TOOL_TIMEOUT}s; $ERR"; fi
}

first_line() { head -n 3 <<<"$1" | tr '\n' ' ' | sed 's/ *$//'; }

# step NAME MODEL-OP COMMAND...: COMMAND must succeed without a word on stderr; then MODEL-OP
# (xfs_io syntax) is applied to the model of file NAME. Returns 1 on failure, so that a scenario
# can stop: what follows depends on it.
step() {
    local name="$1" op="$2"
    shift 2
    run_tool "$@"
    if ((STATUS != 0)) || [[ -n "$ERR" ]]; then
        fail "$* (exit $STATUS: $(first_line "$ERR"))"
        return 1
    fi
    pass "$*"
    if ! model apply "$name" "$op"; then
        fail "the model rejects '$op' on $name (a bug in this script)"
        return 1
    fi
}

# xfs_io step: xo NAME 'CMD' runs "xfs_io -f -c CMD NAME".
xo() { step "$1" "$2" xfs_io -f -c "$2" "$1"; }

# expect_error NAME ERRNO MESSAGE MODEL-OP COMMAND...: COMMAND must fail and say MESSAGE (the
# errno's text) on stderr; the model must agree (MODEL-OP "-": nothing for the model to say).
expect_error() {
    local name="$1" err="$2" message="$3" op="$4"
    shift 4
    if [[ "$op" != "-" ]] && ! model expect-error "$name" "$err" "$op"; then
        fail "the model does not expect $err from '$op' (a bug in this script)"
        return 0
    fi
    run_tool "$@"
    if grep -qF "$message" <<<"$ERR"; then
        pass "$* fails with $err"
    else
        fail "$* should fail with $err ($message); got exit $STATUS: $(first_line "${ERR:-$OUT}")"
    fi
}

free_bytes() { stat -f -c '%f %S' "$DIR" | awk '{ printf "%d\n", $1 * $2 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
sync_files() { (cd "$DIR" && python3 -c 'import os, sys
for name in sys.argv[1:]:
    fd = os.open(name, os.O_RDONLY); os.fsync(fd); os.close(fd)' "$@"); }

# ---------------------------------------------------------------------------------------------
# Scenarios. Each runs in $DIR with block size $BS and model state $STATE.
# ---------------------------------------------------------------------------------------------

# The issue's xfs_io command line, as one invocation; then its fiemap and seek output.
scenario_xfs_io_all() {
    local ops=("pwrite -S 0x61 0 1m" "fpunch 64k 64k" "fzero 256k 64k" "fcollapse 512k 64k"
               "finsert 128k 64k" "funshare 0 1m" "falloc 2m 1m")
    local args=() op
    for op in "${ops[@]}" "fiemap -v" "seek -d 0" "seek -h 0"; do args+=(-c "$op"); done
    run_tool xfs_io -f "${args[@]}" all
    if ((STATUS != 0)) || [[ -n "$ERR" ]]; then
        fail "xfs_io ${args[*]} all (exit $STATUS: $(first_line "$ERR"))"
        rm -f "$DIR/all"
        return
    fi
    pass "xfs_io ${args[*]} all"
    model apply all "${ops[@]}" || { fail "the model rejects the xfs_io command line (a bug in this script)"; return; }
    model_check live "$DIR" all

    # xfs_io's own fiemap and seek output must say what the file says.
    local extents data hole want
    extents=$(awk '/^ *[0-9]+: \[/ && $3 != "hole" { n++ } END { print n + 0 }' <<<"$OUT")
    want=$(cd "$DIR" && LD_PRELOAD="$EFS_PRELOAD" python3 -c 'import os, sys
sys.path.insert(0, sys.argv[1]); import space_model
fd = os.open("all", os.O_RDONLY); print(len(space_model.fiemap(fd)))' "$REPO_ROOT/scripts/lib")
    if [[ "$extents" == "$want" && "$extents" -gt 0 ]]; then
        pass "xfs_io fiemap -v lists the file's $want extents"
    else
        fail "xfs_io fiemap -v lists $extents extents, FS_IOC_FIEMAP returns $want"
    fi
    # xfs_io says "EOF" for ENXIO.
    data=$(awk '$1 == "DATA" { print ($2 == "EOF" ? -1 : $2) }' <<<"$OUT")
    hole=$(awk '$1 == "HOLE" { print ($2 == "EOF" ? -1 : $2) }' <<<"$OUT")
    if [[ -n "$data" && -n "$hole" ]]; then
        tally python3 "$MODEL" --state "$STATE" seek-answer "xfs_io seek -d 0 / seek -h 0" all 0 "$data" "$hole"
    else
        fail "xfs_io seek -d 0 / seek -h 0 printed no DATA and HOLE lines: $(first_line "$OUT")"
    fi
}

# Offsets and lengths that are not block multiples: partial blocks, sub-page shifts at 1 KiB.
scenario_partial_blocks() {
    local b=$BS
    xo part "pwrite -S 0x62 0 $((20 * b + 123))" &&
        xo part "fpunch $((b / 2)) $((3 * b))" &&
        xo part "fzero -k $((5 * b + 7)) $((b + 100))" &&
        xo part "fzero $((19 * b)) $((4 * b))" &&
        xo part "fcollapse $((2 * b)) $b" &&
        xo part "finsert $b $((2 * b))" &&
        xo part "pwrite -S 0x63 $((7 * b + 5)) 333" &&
        xo part "funshare 0 $((4 * b))" &&
        xo part "truncate $((25 * b + 1))" &&
        xo part "falloc -k $((30 * b)) $((4 * b))" &&
        xo part "fpunch $((24 * b)) $((8 * b))" &&
        xo part "finsert 0 $b"
    model_check live "$DIR" part
}

# FICLONERANGE, FICLONE, clone to EOF, copy on write into a shared block, unshare.
scenario_clone() {
    local b=$BS
    if xo csrc "pwrite -S 0x71 0 $((16 * b))" &&
        xo cdst "pwrite -S 0x72 0 $((16 * b))" &&
        xo cdst "reflink csrc $((2 * b)) $((4 * b)) $((8 * b))"; then
        model_check live "$DIR" csrc cdst
        xo cdst "pwrite -S 0x73 $((5 * b + 10)) 20" &&
            xo cwhole "reflink csrc" &&
            xo ctail "pwrite -S 0x74 0 $((3 * b + 100))" &&
            xo ctail2 "pwrite -S 0x75 0 $b" &&
            xo ctail2 "reflink ctail $b $b 0" &&
            xo cdst "funshare 0 $((16 * b))"
    fi
    model_check live "$DIR" csrc cdst cwhole ctail ctail2
}

# FIDEDUPERANGE through xfs_io: equal ranges are shared, different ones left alone.
scenario_dedupe() {
    local b=$BS
    if xo da "pwrite -S 0x41 0 $((8 * b))" &&
        xo db "pwrite -S 0x41 0 $((8 * b))" &&
        xo db "pwrite -S 0x42 $((6 * b)) $b" &&
        xo db "dedupe da 0 0 $((4 * b))"; then
        expect_error db EBADE "did not match" "dedupe da $((6 * b)) $((6 * b)) $b" \
            xfs_io -c "dedupe da $((6 * b)) $((6 * b)) $b" db
    fi
    model_check live "$DIR" da db
}

# util-linux fallocate(1): -c, -i, -p, -z, -n and plain preallocation with -o/-l.
scenario_fallocate1() {
    local b=$BS
    xo fa "pwrite -S 0x51 0 $((64 * b))" &&
        step fa "fcollapse $((8 * b)) $((4 * b))" fallocate -c -o $((8 * b)) -l $((4 * b)) fa &&
        step fa "finsert $((2 * b)) $((2 * b))" fallocate -i -o $((2 * b)) -l $((2 * b)) fa &&
        step fa "fpunch $((20 * b + 1)) $((3 * b))" fallocate -p -o $((20 * b + 1)) -l $((3 * b)) fa &&
        step fa "fzero $((30 * b)) $((2 * b))" fallocate -z -o $((30 * b)) -l $((2 * b)) fa &&
        step fa "fzero $((60 * b)) $((6 * b))" fallocate -z -o $((60 * b)) -l $((6 * b)) fa &&
        step fa "falloc -k $((70 * b)) $((4 * b))" fallocate -n -o $((70 * b)) -l $((4 * b)) fa &&
        step fa "falloc $((80 * b)) $((8 * b))" fallocate -o $((80 * b)) -l $((8 * b)) fa
    step fb "falloc 0 $((40 * b))" fallocate -l $((40 * b)) fb || true
    model_check live "$DIR" fa fb
}

# Calls that must fail, with XFS's errno, and change nothing.
scenario_errors() {
    local b=$BS size
    xo ea "pwrite -S 0x45 0 $((16 * b))" || { model_check live "$DIR" ea; return; }
    size=$((16 * b))
    expect_error ea EINVAL "Invalid argument" "fcollapse $((b / 2)) $b" xfs_io -c "fcollapse $((b / 2)) $b" ea
    expect_error ea EINVAL "Invalid argument" "fcollapse 0 $((b + b / 2))" fallocate -c -o 0 -l $((b + b / 2)) ea
    expect_error ea EINVAL "Invalid argument" "fcollapse $b $((size - b))" xfs_io -c "fcollapse $b $((size - b))" ea
    expect_error ea EINVAL "Invalid argument" "finsert $size $b" xfs_io -c "finsert $size $b" ea
    expect_error ea EINVAL "Invalid argument" "finsert $b $((b / 2))" fallocate -i -o "$b" -l $((b / 2)) ea
    expect_error ea EBADF "Bad file descriptor" - xfs_io -r -c "fcollapse 0 $b" ea
    expect_error ea EBADF "Bad file descriptor" - xfs_io -r -c "finsert 0 $b" ea
    expect_error ea EXDEV "Invalid cross-device link" - xfs_io -c "reflink $EFS_WORK/outside 0 0 $b" ea
    expect_error ea EINVAL "Invalid argument" "reflink ea 0 $b $((2 * b))" xfs_io -c "reflink ea 0 $b $((2 * b))" ea
    expect_error ea EINVAL "Invalid argument" "reflink ea $((b / 2)) $((8 * b)) $b" \
        xfs_io -c "reflink ea $((b / 2)) $((8 * b)) $b" ea
    expect_error ea EINVAL "Invalid argument" "dedupe ea 0 $((12 * b)) $((8 * b))" \
        xfs_io -c "dedupe ea 0 $((12 * b)) $((8 * b))" ea
    model_check live "$DIR" ea
}

# cp --reflink=always: the copy shares every block, costs (almost) no space, and deleting it gives
# back only what was written to it afterwards.
scenario_cp_reflink() {
    local before after used b=$BS
    cp "$EFS_WORK/big.src" "$DIR/big" || { fail "cp $BIG_SIZE of data into the mount"; return; }
    sync_files big
    model apply big "import $EFS_WORK/big.src" || { fail "model import big"; return; }
    before=$(free_bytes)
    if ! step big2 "reflink big" cp --reflink=always big big2; then
        model_check live "$DIR" big
        return
    fi
    sync_files big big2
    after=$(free_bytes)
    used=$((before - after))
    if cmp -s "$DIR/big" "$DIR/big2"; then pass "cp --reflink=always: copy equals the original"; else
        fail "cp --reflink=always: copy differs from the original"; fi
    if ((used <= 1048576)); then
        pass "cp --reflink=always of $BIG_SIZE used $(mib $used) of free space"
    else
        fail "cp --reflink=always of $BIG_SIZE used $(mib $used) of free space (expected at most 1 MiB)"
    fi
    model_check live "$DIR" big big2
    if xo big2 "pwrite -S 0x99 $((3 * b)) 10"; then
        if cmp -s "$EFS_WORK/big.src" "$DIR/big"; then
            pass "writing into the copy leaves the original alone"
        else
            fail "writing into the copy changed the original"
        fi
        model_check live "$DIR" big big2
    fi
    sync_files big big2
    before=$(free_bytes)
    rm -f "$DIR/big2"
    model forget big2
    sync_files big
    after=$(free_bytes)
    if ((after - before >= 0 && after - before <= 1048576 + b)); then
        pass "deleting the copy frees only its own block ($(mib $((after - before))))"
    else
        fail "deleting the copy freed $(mib $((after - before))) (expected one block, $b bytes)"
    fi
}

# duperemove -d on two identical files written separately: their blocks end up shared.
scenario_duperemove() {
    local before after gain want
    want=$(stat -c %s "$EFS_WORK/dupe.src")
    if ! cp "$EFS_WORK/dupe.src" "$DIR/dup1" || ! cp "$EFS_WORK/dupe.src" "$DIR/dup2"; then
        fail "cp $DUPE_SIZE files into the mount"
        return
    fi
    sync_files dup1 dup2
    if ! model apply dup1 "import $EFS_WORK/dupe.src" || ! model apply dup2 "import $EFS_WORK/dupe.src"; then
        fail "model import dup1 dup2"
        return
    fi
    before=$(free_bytes)
    run_tool duperemove -d dup1 dup2
    if ((STATUS != 0)) || grep -qiE 'error|fail|can only dedupe' <<<"$OUT$ERR"; then
        fail "duperemove -d dup1 dup2 (exit $STATUS: $(grep -iE 'error|fail|dedupe' <<<"$OUT$ERR" | head -n 3 | tr '\n' ' '))"
        model_check live "$DIR" dup1 dup2
        return
    fi
    pass "duperemove -d dup1 dup2"
    sync_files dup1 dup2
    after=$(free_bytes)
    gain=$((after - before))
    if ((gain >= want - want / 16 && gain <= want + 1048576)); then
        pass "duperemove freed $(mib $gain) (one file is $(mib "$want"))"
    else
        fail "duperemove freed $(mib $gain); expected about $(mib "$want")"
    fi
    if cmp -s "$EFS_WORK/dupe.src" "$DIR/dup1" && cmp -s "$EFS_WORK/dupe.src" "$DIR/dup2"; then
        pass "duperemove left both files' contents alone"
    else
        fail "duperemove changed file contents"
    fi
    model apply dup2 "dedupe dup1 0 0 $want" || fail "model: dedupe dup1 into dup2"
    model_check live "$DIR" dup1 dup2
}

# The same xfs_io and fallocate(1) commands on a file outside extentfs, with and without the
# preload: identical output, errors and results. The library must leave every other file alone.
passthrough_run() { # $1: "" or the preload library; prints everything observable
    local plain="$EFS_WORK/passthrough" args=() op
    for op in "pwrite -q -S 0x61 0 1m" "fpunch 64k 64k" "fzero 256k 64k" "fcollapse 512k 64k" "finsert 128k 64k" \
        "funshare 0 1m" "falloc -k 2m 1m" "reflink p 0 0 64k" "dedupe p 0 64k 64k" "seek -a -r 0"; do
        args+=(-c "$op")
    done
    rm -rf "$plain" && mkdir -p "$plain" && cd "$plain" || return 1
    LD_PRELOAD="$1" xfs_io -f "${args[@]}" p 2>&1 || echo "xfs_io exit $?"
    # Physical addresses differ from run to run: only whether FIEMAP works.
    # shellcheck disable=SC2069 # errors only: stderr to the output, stdout (the map) away
    LD_PRELOAD="$1" xfs_io -c "fiemap" p 2>&1 >/dev/null || echo "xfs_io fiemap exit $?"
    LD_PRELOAD="$1" fallocate -c -o 4096 -l 4096 p 2>&1 || echo "fallocate -c exit $?"
    LD_PRELOAD="$1" fallocate -i -o 0 -l 4096 p 2>&1 || echo "fallocate -i exit $?"
    LD_PRELOAD="$1" fallocate -c -o 1 -l 4096 p 2>&1 || echo "fallocate -c exit $?"
    LD_PRELOAD="$1" cp --reflink=always p p2 2>&1 || echo "cp --reflink exit $?"
    sha256sum p
    stat -c '%s %b' p
}

check_passthrough() {
    local plain="$EFS_WORK/passthrough" without with fstype
    fstype=$(stat -f -c %T "$EFS_WORK")
    without=$(passthrough_run "" || true)
    with=$(passthrough_run "$EFS_PRELOAD" || true)
    rm -rf "$plain"
    if [[ -n "$with" && "$with" == "$without" ]]; then
        pass "outside extentfs ($fstype), xfs_io, fallocate(1) and cp --reflink behave the same with the preload"
    else
        fail "outside extentfs ($fstype), the tools behave differently with the preload:" \
            "$(diff <(echo "$without") <(echo "$with") | head -n 8 | tr '\n' ' ')"
    fi
}

# All scenarios on the directory $DIR (an empty directory of the filesystem under test).
run_scenarios() {
    scenario_xfs_io_all
    scenario_partial_blocks
    scenario_clone
    scenario_dedupe
    scenario_fallocate1
    scenario_errors
    local reference=()
    [[ "$(findmnt -n -o FSTYPE -T "$DIR")" == fuse.extentfs ]] || reference=(--reference)
    tally env LD_PRELOAD="$EFS_PRELOAD" python3 "$MODEL" --state "$STATE" edges "$DIR" "$EFS_WORK" "${reference[@]}"
    scenario_cp_reflink
    scenario_duperemove
}

# ---------------------------------------------------------------------------------------------

head -c "$BIG_SIZE" /dev/urandom >"$EFS_WORK/big.src"
head -c "$DUPE_SIZE" /dev/urandom >"$EFS_WORK/dupe.src"
head -c 65536 /dev/urandom >"$EFS_WORK/outside"

check_passthrough

if [[ -n "$REFERENCE_DIR" ]]; then
    DIR="$REFERENCE_DIR/tools-test.$$"
    mkdir "$DIR"
    BS=$(stat -f -c %S "$DIR") # the filesystem block size (XFS reports a larger st_blksize)
    STATE="$EFS_WORK/model-reference"
    log "reference run in $DIR ($(findmnt -n -o FSTYPE -T "$DIR"), block size $BS)"
    run_scenarios
else
    for BS in $BLOCK_SIZES; do
        log "block size $BS: fresh image"
        image="$EFS_WORK/tools-$BS.img"
        mnt="$EFS_WORK/mnt-$BS"
        STATE="$EFS_WORK/model-$BS"
        efs_mkfs "$image" "$BS"
        if ! efs_mount "$image" "$mnt"; then
            fail "block size $BS: mount a fresh image"
            continue
        fi
        DIR="$mnt"
        # Tools (fsx among them) align collapse and insert to a file's st_blksize.
        : >"$DIR/blksize-probe"
        blksize=$(stat -c %o "$DIR/blksize-probe")
        rm -f "$DIR/blksize-probe"
        if [[ "$blksize" == "$BS" ]]; then pass "block size $BS: a file's st_blksize is the filesystem block size"; else
            fail "block size $BS: a file's st_blksize is $blksize, not the filesystem block size"; fi
        run_scenarios

        log "block size $BS: unmount, fsck, mount again"
        if ! efs_umount "$mnt"; then
            fail "block size $BS: unmount after the tools"
            continue
        fi
        if efs_fsck "$image"; then pass "block size $BS: fsck after the tools"; else fail "block size $BS: fsck after the tools"; fi
        if ! efs_mount "$image" "$mnt"; then
            fail "block size $BS: mount the image again"
            continue
        fi
        model_check "after remount" "$DIR"
        efs_umount "$mnt" || fail "block size $BS: unmount after remount"
        if efs_fsck "$image"; then pass "block size $BS: fsck after remount"; else fail "block size $BS: fsck after remount"; fi
        rm -f "$image"
    done
fi

# The summary line comes from efs_final, after cleanup.
((failed == 0))
