/// Runs a fixed sequence of operations on a fresh target and returns its first failure, or nil
/// when every operation and the final checks pass. The shrinker calls it once per attempt.
public struct Replayer {
    public var makeTarget: TargetFactory
    public var blockSize: Int
    public var files: Int
    public var fullCheckInterval: Int

    public init(blockSize: Int, files: Int, fullCheckInterval: Int, makeTarget: @escaping TargetFactory) {
        self.makeTarget = makeTarget
        self.blockSize = blockSize
        self.files = files
        self.fullCheckInterval = fullCheckInterval
    }

    public func run(_ operations: [ExerciseOperation]) -> ExerciseFailure? {
        let target: ExerciseTarget
        do {
            target = try makeTarget()
        } catch {
            return ExerciseFailure(index: 0, operation: nil, kind: .targetBroken, message: "cannot set up the target: \(error)")
        }
        defer { target.discard() }
        let runner = Runner(target: target, files: files, fullCheckInterval: fullCheckInterval)
        do {
            for (index, operation) in operations.enumerated() {
                try runner.step(operation, index: index)
            }
            try runner.finish(index: operations.count)
            return nil
        } catch let failure as ExerciseFailure {
            return failure
        } catch {
            return ExerciseFailure(index: operations.count, operation: nil, kind: .targetBroken, message: "\(error)")
        }
    }
}
