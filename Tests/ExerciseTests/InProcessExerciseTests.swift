import XCTest
import ExtentFSExercise

/// The exerciser against the engine in-process, for a fixed budget with fixed seeds, at every
/// block size class: smaller than a page (per-block page state), a page, larger than a page.
/// The page-cache budget is 256 KiB, so reclaim and dirty throttling run all the time. Runs
/// with background readers (racing reclaim) are in scripts/exercise.sh, where a crash of one
/// run, from memory the engine corrupts, does not take the other tests down with it.
final class InProcessExerciseTests: XCTestCase {
    static let operations = 3000
    static let runs: [(blockSize: Int, seed: UInt64)] = [(512, 1), (1024, 2), (4096, 3), (65536, 4)]

    func testRandomOperationsMatchTheModelAtEveryBlockSize() throws {
        for run in Self.runs {
            let directory = try TemporaryDirectory()
            var settings = ExerciseSettings(seed: run.seed, blockSize: run.blockSize, operations: Self.operations)
            settings.shrinkSeconds = 30
            settings.replayPath = directory.path + "/replay.json"
            var log: [String] = []
            let outcome = Exercise.run(settings, makeTarget: { try EngineTarget(.init(blockSize: run.blockSize, files: settings.files)) }) {
                log.append($0)
            }
            XCTAssertTrue(outcome.passed, "block size \(run.blockSize), seed \(run.seed):\n" + log.suffix(40).joined(separator: "\n"))
        }
    }

    /// Sequences that once found engine bugs (Replays/*.json), replayed as regression tests.
    func testRecordedReplaysPass() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Replays")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let file = try ReplayFile.read(from: folder.appendingPathComponent(name).path)
            var settings = ExerciseSettings(seed: file.seed, blockSize: file.blockSize, operations: file.operations.count)
            settings.files = file.files
            settings.cacheBytes = file.cacheBytes
            settings.shrinkSeconds = 0
            let directory = try TemporaryDirectory()
            settings.replayPath = directory.path + "/replay.json"
            var log: [String] = []
            var configuration = EngineTarget.Configuration(blockSize: file.blockSize, files: file.files)
            configuration.cacheBytes = file.cacheBytes
            let outcome = Exercise.replay(file, settings: settings, makeTarget: { try EngineTarget(configuration) }) { log.append($0) }
            XCTAssertTrue(outcome.passed, "\(name):\n" + log.joined(separator: "\n"))
        }
    }
}
