/// A whole exercise: generate (or replay) operations against a fresh target, and on a failure
/// print the log, write a replay file, shrink, and write the shrunk replay file too.
public struct ExerciseSettings: Sendable {
    public var seed: UInt64
    public var blockSize: Int
    public var files = 2
    public var operations: Int
    public var cacheBytes = 256 << 10
    public var maxFileBytes = 2 << 20
    public var leaveOut: Set<OperationKind> = []
    public var fullCheckInterval = 128
    public var shrinkSeconds: Double = 120
    /// Where the replay file goes; the shrunk one gets ".shrunk" before its extension.
    public var replayPath: String?
    /// "in-process" or "mount", recorded in replay files.
    public var mode = "in-process"
    /// In-process threads racing the operations with reads (EngineTarget), recorded in replay
    /// files; the caller's target factory is what starts them.
    public var backgroundReaders = 0
    /// How many operations of the log a failure report prints (the replay file has them all).
    public var logLines = 60

    public init(seed: UInt64, blockSize: Int, operations: Int) {
        self.seed = seed
        self.blockSize = blockSize
        self.operations = operations
    }

    var defaultReplayPath: String { "extentfs-exercise-\(mode)-bs\(blockSize)-seed\(seed).json" }
}

public struct ExerciseOutcome {
    public var operationsRun: Int
    public var seconds: Double
    public var failure: ExerciseFailure?
    public var replayPath: String?
    public var shrunk: Shrinker.Result?
    public var shrunkReplayPath: String?
    /// Per kind of operation: succeeded and refused (errno, differing dedupe, nothing copied).
    public var statistics: [OperationKind: (succeeded: Int, refused: Int)] = [:]
    public var passed: Bool { failure == nil }

    /// One line: "write 1200/0, clone 300/45, ..." in the order of `OperationKind.allCases`.
    public var statisticsLine: String {
        OperationKind.allCases.compactMap { kind in
            statistics[kind].map { "\(kind.rawValue) \($0.succeeded)/\($0.refused)" }
        }.joined(separator: ", ")
    }
}

public enum Exercise {
    /// A generated run of `settings.operations` operations.
    public static func run(_ settings: ExerciseSettings, makeTarget: @escaping TargetFactory,
                           report: (String) -> Void) -> ExerciseOutcome {
        var generatorSettings = Generator.Settings(files: settings.files, blockSize: settings.blockSize)
        generatorSettings.maxFileBytes = settings.maxFileBytes
        generatorSettings.leaveOut(settings.leaveOut)
        var generator = Generator(settings: generatorSettings, seed: settings.seed)
        return execute(settings, count: settings.operations, makeTarget: makeTarget, report: report) { model, _ in
            generator.next(model)
        }
    }

    /// The operations of a replay file, in the settings it records.
    public static func replay(_ file: ReplayFile, settings: ExerciseSettings, makeTarget: @escaping TargetFactory,
                              report: (String) -> Void) -> ExerciseOutcome {
        execute(settings, count: file.operations.count, makeTarget: makeTarget, report: report) { _, index in
            file.operations[index]
        }
    }

    private static func execute(_ settings: ExerciseSettings, count: Int, makeTarget: @escaping TargetFactory,
                                report: (String) -> Void, next: (Model, Int) -> ExerciseOperation) -> ExerciseOutcome {
        let start = monotonicSeconds()
        var operations: [ExerciseOperation] = []
        operations.reserveCapacity(count)
        var failure: ExerciseFailure?
        var diagnostics = ""
        var statistics: [OperationKind: (succeeded: Int, refused: Int)] = [:]
        do {
            let target = try makeTarget()
            defer { target.discard() }
            let runner = Runner(target: target, files: settings.files, fullCheckInterval: settings.fullCheckInterval)
            defer { statistics = runner.statistics }
            var nextReport = max(1, count / 10)
            do {
                for index in 0..<count {
                    let operation = next(runner.model, index)
                    operations.append(operation)
                    try runner.step(operation, index: index)
                    if index + 1 == nextReport, index + 1 < count, count >= 1000 {
                        let elapsed = monotonicSeconds() - start
                        report("exercise: \((index + 1) * 100 / count)% (\(index + 1) operations, \(Int(Double(index + 1) / elapsed)) ops/s)")
                        nextReport += max(1, count / 10)
                    }
                }
                try runner.finish(index: count)
            } catch let error as ExerciseFailure {
                failure = error
                diagnostics = target.diagnostics()
            }
        } catch {
            failure = ExerciseFailure(index: 0, operation: nil, kind: .targetBroken, message: "cannot set up the target: \(error)")
        }
        var outcome = ExerciseOutcome(operationsRun: failure.map { min($0.index + 1, count) } ?? count,
                                      seconds: monotonicSeconds() - start, failure: failure)
        outcome.statistics = statistics
        if let failure {
            FailureReport.handle(failure, operations: operations, diagnostics: diagnostics, settings: settings,
                                 makeTarget: makeTarget, outcome: &outcome, report: report)
        }
        return outcome
    }
}
