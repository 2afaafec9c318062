#!/usr/bin/env bash
# The two fuzzers of what extentfs reads from an image (docs/FORMAT.md), which must never trap,
# hang or allocate without bound, whatever the image holds:
#
#   - the decoder fuzzer: coverage-guided (libFuzzer, through swift build --sanitize=fuzzer) over
#     the superblock, log record, checkpoint payload, checkpoint index and tree node decoders, a
#     whole metadata tree, and what mount builds from what they decode (Sources/ExtentFS/Fsck/DecoderFuzzing.swift,
#     Tests/DecoderFuzzer);
#   - the image fuzzer: whole small images damaged (bit flips, zeroed ranges, truncation, and
#     crafted values with every checksum recomputed), each checked by fsck, an in-process mount, a
#     walk of the tree, a write workload, unmount and fsck again, in a child process under a time
#     and memory limit (Tests/ImageFuzzer).
#
#   scripts/fuzz.sh            # the long run: FUZZ_SECONDS (default 900) for each fuzzer
#   scripts/fuzz.sh --short    # what scripts/test.sh runs: the decoder fuzzer with seed 1 for
#                              # DECODER_RUNS inputs (the image fuzzer's fixed-seed run and both
#                              # corpora are in swift test, FuzzCorpusTests)
#
# FUZZ_SECONDS, FUZZ_SEED (the long run's first image seed; default from the clock), DECODER_RUNS
# (default 300000). Findings: .build/fuzz/artifacts/ (decoder inputs) and
# .build/fuzz/image-failures/ (images, .fzimg, with what was done to each). Fix what they found
# in the engine, then add the input to Tests/FuzzCorpus (decoders/ or images/, and a line in its
# README) so that the tests replay it. Fails when either fuzzer finds something.
set -uo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

short=0
[[ "${1:-}" == "--short" ]] && short=1
seconds="${FUZZ_SECONDS:-900}"
decoder_runs="${DECODER_RUNS:-300000}"
work="$REPO_ROOT/.build/fuzz"
artifacts="$work/artifacts"
mkdir -p "$artifacts"

log "building the decoder fuzzer (libFuzzer; its own build in $work)"
EXTENTFS_FUZZ=1 swift build --sanitize=fuzzer --scratch-path "$work" --product DecoderFuzzer ||
    die "the decoder fuzzer did not build (does this toolchain have libFuzzer? swiftc -sanitize=fuzzer)"
fuzzer="$work/debug/DecoderFuzzer"

failed=0
# Common options: inputs up to 8 KiB and 2 bytes (the checkpoints of the seeds are about 1 KiB;
# a tree node is a block, and a whole tree of 4 KiB blocks needs two), 10 s per input at most (a
# hang), 2 GiB of memory at most (unbounded allocation), and traps reported by libFuzzer, not
# described at length by Swift's backtracer first.
libfuzzer_options=(-max_len=8194 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1)
if ((short)); then
    # A fresh working corpus, so that the same seed over the same inputs does the same run.
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    log "decoder fuzzer: seed 1, $decoder_runs inputs, from Tests/FuzzCorpus/decoders"
    SWIFT_BACKTRACE=enable=no "$fuzzer" -seed=1 -runs="$decoder_runs" "${libfuzzer_options[@]}" \
        "$scratch" Tests/FuzzCorpus/decoders 2>"$work/decoder.log" || failed=1
else
    mkdir -p "$work/work-corpus"
    log "decoder fuzzer: $seconds s, corpus in $work/work-corpus and Tests/FuzzCorpus/decoders"
    SWIFT_BACKTRACE=enable=no "$fuzzer" -max_total_time="$seconds" "${libfuzzer_options[@]}" \
        "$work/work-corpus" Tests/FuzzCorpus/decoders 2>"$work/decoder.log" || failed=1
fi
grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$work/decoder.log" >&2 || true
if ((failed)); then
    grep -E 'ERROR|Test unit written' "$work/decoder.log" >&2
    # Where it trapped, with Swift's backtrace this time.
    newest="$(ls -t "$artifacts"/* 2>/dev/null | head -n 1)"
    [[ -n "$newest" ]] && "$fuzzer" "$newest" 2>&1 | grep -E 'Fatal|failure|at /' | head -n 12 >&2
    log "the decoder fuzzer found something: $newest"
fi

if ((!short)); then
    log "building the image fuzzer"
    swift build --product ImageFuzzer || die "the image fuzzer did not build"
    seed="${FUZZ_SEED:-$(date +%s)}"
    deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        log "image fuzzer: seed $seed"
        .build/debug/ImageFuzzer run --seed "$seed" --cases 100000 --seconds $((deadline - SECONDS)) \
            --failures "$work/image-failures" 2>/dev/null | grep -vE ' extentfs\.' || failed=1
        seed=$((seed + 1))
    done
    [[ -d "$work/image-failures" ]] && log "image fuzzer findings (if any): $work/image-failures"
fi

((failed == 0)) || die "fuzzing found inputs that trap, hang or contradict (see above)"
log "fuzzing found nothing"
