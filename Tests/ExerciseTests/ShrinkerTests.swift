import XCTest
import ExtentFSExercise

final class ShrinkerTests: XCTestCase {
    /// A long run against a planted bug fails, writes a replay file that fails the same way, and
    /// shrinks to at most three operations that still fail the same way on a fresh volume.
    func testAPlantedBugShrinksToAShortSequenceThatReplays() throws {
        let directory = try TemporaryDirectory()
        var settings = ExerciseSettings(seed: 7, blockSize: 4096, operations: 2000)
        settings.shrinkSeconds = 60
        settings.replayPath = directory.path + "/planted.json"
        let configuration = EngineTarget.Configuration(blockSize: 4096, files: settings.files)
        let makeTarget: TargetFactory = { try FaultyTarget(configuration) }
        var log: [String] = []
        let outcome = Exercise.run(settings, makeTarget: makeTarget) { log.append($0) }
        let joinedLog = log.joined(separator: "\n")

        let failure = try XCTUnwrap(outcome.failure, "the planted bug went unnoticed:\n" + joinedLog)
        XCTAssertEqual(failure.kind, .contents, joinedLog)
        let shrunk = try XCTUnwrap(outcome.shrunk, joinedLog)
        XCTAssertLessThanOrEqual(shrunk.operations.count, 3, joinedLog)
        XCTAssertTrue(shrunk.operations.contains { if case .fallocate(_, _, _, .punchHole) = $0 { return true }; return false }, joinedLog)
        XCTAssertEqual(shrunk.failure.kind, failure.kind)

        // Both replay files read back and fail again the same way.
        let replayer = Replayer(blockSize: 4096, files: settings.files, fullCheckInterval: settings.fullCheckInterval, makeTarget: makeTarget)
        for path in [try XCTUnwrap(outcome.replayPath), try XCTUnwrap(outcome.shrunkReplayPath)] {
            let file = try ReplayFile.read(from: path)
            let again = try XCTUnwrap(replayer.run(file.operations), "\(path) does not fail again")
            XCTAssertEqual(again.signature, file.failure?.signature, path)
        }
        let shrunkFile = try ReplayFile.read(from: try XCTUnwrap(outcome.shrunkReplayPath))
        XCTAssertEqual(shrunkFile.operations, shrunk.operations)

        // The same sequence on the real engine passes: the failure was the planted bug's.
        let engine = Replayer(blockSize: 4096, files: settings.files, fullCheckInterval: settings.fullCheckInterval) {
            try EngineTarget(configuration)
        }
        XCTAssertNil(engine.run(shrunk.operations))
    }
}
