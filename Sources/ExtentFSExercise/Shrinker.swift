import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Shortens a failing sequence to one that still fails the same way (the same kind of failure),
/// replaying each candidate from scratch on a fresh volume. First the recent past alone (most
/// failures need only the last few operations), then delta debugging: remove chunks, halving
/// their size down to single operations; then each operation tries to get smaller (shorter
/// ranges, rounder offsets), and removal runs again. Bounded in time; returns the best seen.
public struct Shrinker {
    public var replayer: Replayer
    public var timeLimit: Double

    public init(replayer: Replayer, timeLimit: Double) {
        self.replayer = replayer
        self.timeLimit = timeLimit
    }

    public struct Result {
        public var operations: [ExerciseOperation]
        public var failure: ExerciseFailure
        public var attempts: Int
        public var timedOut: Bool
    }

    /// `operations` must end where `failure` was seen (or be the whole run for final-check
    /// failures). `onProgress` hears the length of each shorter failing sequence found.
    public func shrink(_ operations: [ExerciseOperation], failure: ExerciseFailure, onProgress: (Int) -> Void = { _ in }) -> Result {
        let deadline = monotonicSeconds() + timeLimit
        var best = (operations: operations, failure: failure)
        var attempts = 0
        var timedOut = false

        /// Replays a candidate; keeps it (cut after its failure) when it fails the same way.
        /// Candidates are shorter, or as long with one operation simplified.
        func tryCandidate(_ candidate: [ExerciseOperation]) -> Bool {
            guard !candidate.isEmpty, candidate.count <= best.operations.count else { return false }
            if monotonicSeconds() > deadline {
                timedOut = true
                return false
            }
            attempts += 1
            guard let seen = replayer.run(candidate), seen.kind == failure.kind else { return false }
            let kept = seen.operation == nil ? candidate : Array(candidate[...seen.index])
            if kept.count < best.operations.count { onProgress(kept.count) }
            best = (kept, seen)
            return true
        }

        // The recent past alone.
        var window = 4
        while window < best.operations.count, !timedOut {
            if tryCandidate(Array(best.operations.suffix(window))) { break }
            window *= 4
        }

        // Delta debugging over chunks.
        func removeChunks() {
            var chunk = max(1, best.operations.count / 2)
            while !timedOut {
                var start = 0
                var removedAny = false
                while start < best.operations.count, !timedOut {
                    var candidate = best.operations
                    candidate.removeSubrange(start..<min(start + chunk, candidate.count))
                    if tryCandidate(candidate) {
                        removedAny = true
                    } else {
                        start += chunk
                    }
                }
                if chunk == 1 && !removedAny { break }
                if !removedAny { chunk = max(1, chunk / 2) }
            }
        }
        removeChunks()

        // Simpler operations, each as far as it goes; then removal again, since a simpler
        // operation may make others unnecessary.
        var simplifiedAny = false
        var index = 0
        while index < best.operations.count, !timedOut {
            var changed = false
            for simpler in best.operations[index].simplifications(blockSize: replayer.blockSize) {
                var candidate = best.operations
                candidate[index] = simpler
                if tryCandidate(candidate) {
                    changed = true
                    simplifiedAny = true
                    break
                }
            }
            if !changed { index += 1 }
        }
        if simplifiedAny { removeChunks() }
        return Result(operations: best.operations, failure: best.failure, attempts: attempts, timedOut: timedOut)
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
