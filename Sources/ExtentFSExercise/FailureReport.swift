/// What happens after a failure: the end of the operation log and the failure, a replay file
/// with every operation up to it, then shrinking and a second replay file with the short one.
enum FailureReport {
    static func handle(_ failure: ExerciseFailure, operations: [ExerciseOperation], diagnostics: String, settings: ExerciseSettings,
                       makeTarget: @escaping TargetFactory, outcome: inout ExerciseOutcome, report: (String) -> Void) {
        let failing = failure.operation == nil ? operations : Array(operations[...min(failure.index, operations.count - 1)])
        report("exercise: FAILED after \(failing.count) operations (seed \(settings.seed), block size \(settings.blockSize), \(settings.mode))")
        if settings.backgroundReaders > 0 {
            report("note: \(settings.backgroundReaders) background readers raced this run: replays may need several tries to fail again")
        }
        report("operation log (the last \(min(settings.logLines, failing.count)) of \(failing.count)):")
        printLog(failing, last: settings.logLines, report: report)
        report(failure.description)
        if !diagnostics.isEmpty { report("target diagnostics:\n\(diagnostics)") }

        let path = settings.replayPath ?? settings.defaultReplayPath
        outcome.replayPath = write(failing, failure, settings, to: path, report: report)

        guard failure.kind != .unsupported, failure.kind != .targetBroken || failure.index > 0, !failing.isEmpty,
              settings.shrinkSeconds > 0 else {
            let shrinkable = failure.kind != .unsupported && (failure.kind != .targetBroken || failure.index > 0)
            report("not shrunk: \(shrinkable ? "no time given" : failure.kind.rawValue)")
            return
        }
        report("shrinking (at most \(Int(settings.shrinkSeconds)) s)...")
        let replayer = Replayer(blockSize: settings.blockSize, files: settings.files, fullCheckInterval: settings.fullCheckInterval, makeTarget: makeTarget)
        let shrinker = Shrinker(replayer: replayer, timeLimit: settings.shrinkSeconds)
        let shrunk = shrinker.shrink(failing, failure: failure) { count in
            report("  still fails with \(count) operations")
        }
        outcome.shrunk = shrunk
        report("shrunk to \(shrunk.operations.count) operations in \(shrunk.attempts) replays\(shrunk.timedOut ? " (time limit reached)" : ""):")
        printLog(shrunk.operations, last: settings.logLines, report: report)
        report(shrunk.failure.description)
        outcome.shrunkReplayPath = write(shrunk.operations, shrunk.failure, settings, to: shrunkPath(path), report: report)
    }

    static func printLog(_ operations: [ExerciseOperation], last count: Int, report: (String) -> Void) {
        let first = max(0, operations.count - count)
        if first > 0 { report("  ... \(first) earlier operations in the replay file") }
        for index in first..<operations.count {
            report("  \(String(index).leftPadded(to: 7))  \(operations[index])")
        }
    }

    private static func write(_ operations: [ExerciseOperation], _ failure: ExerciseFailure, _ settings: ExerciseSettings,
                              to path: String, report: (String) -> Void) -> String? {
        var file = ReplayFile(seed: settings.seed, blockSize: settings.blockSize, files: settings.files,
                              cacheBytes: settings.cacheBytes, mode: settings.mode, failure: failure, operations: operations)
        if settings.backgroundReaders > 0 { file.backgroundReaders = settings.backgroundReaders }
        do {
            try file.write(to: path)
            report("replay file: \(path)  (extentfs exercise --replay \(path))")
            return path
        } catch {
            report("could not write the replay file: \(error)")
            return nil
        }
    }

    static func shrunkPath(_ path: String) -> String {
        path.hasSuffix(".json") ? String(path.dropLast(5)) + ".shrunk.json" : path + ".shrunk"
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
