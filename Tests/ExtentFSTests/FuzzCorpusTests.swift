import Foundation
import XCTest
@testable import ExtentFS

/// The fuzzers' regression corpus, replayed, and the image fuzzer for a fixed budget with a fixed
/// seed (scripts/fuzz.sh runs both fuzzers at length; scripts/test.sh runs the coverage-guided
/// one for a fixed budget too, since it needs its own build). Every file in Tests/FuzzCorpus is
/// an input that once trapped or contradicted itself, or a seed; Tests/FuzzCorpus/README.md says
/// which.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    /// Cases and a time cap for the fixed-budget run: about 25 s on the 2-core machine.
    static let imageCases = 600

    private func files(in directory: String, withExtension suffix: String = "") throws -> [String] {
        let path = Self.corpus.appendingPathComponent(directory).path
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(suffix) }.sorted().map { path + "/" + $0 }
    }

    /// In-process: a trap here ends the test run, which fails it.
    func testDecoderCorpusDecodesWithoutTrapping() throws {
        let inputs = try files(in: "decoders")
        XCTAssertGreaterThan(inputs.count, 20, "the seeds are missing")
        for input in inputs {
            DecoderFuzzing.run(Array(try Data(contentsOf: URL(fileURLWithPath: input))))
        }
    }

    /// The whole-tree seeds that fit in the fuzzer's input load whole in its superblock (their
    /// name index hashes with its UUID), so mutations of them reach every decoder of the tree.
    func testTreeSeedsLoadWhole() throws {
        let seeds = try files(in: "decoders").filter { $0.contains("/seed-tree-") }
        XCTAssertFalse(seeds.isEmpty, "the tree seeds are missing")
        let whole = try seeds.filter { DecoderFuzzing.treeLoadsWhole(Array(try Data(contentsOf: URL(fileURLWithPath: $0)))) }
        XCTAssertEqual(whole, seeds, "tree seeds that do not load whole: regenerate them (Tests/FuzzCorpus/README.md)")
    }

    func testImageCorpusPassesEveryCheck() throws {
        let images = try files(in: "images", withExtension: ".fzimg")
        XCTAssertFalse(images.isEmpty, "the image corpus is missing")
        let result = try runImageFuzzer(["replay"] + images)
        XCTAssertEqual(result.status, 0, "replaying the image corpus:\n\(result.output)")
    }

    func testImageFuzzerFindsNothingInAFixedBudget() throws {
        let failures = FileManager.default.temporaryDirectory.appendingPathComponent("extentfs-image-fuzz-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: failures) }
        let result = try runImageFuzzer(["run", "--seed", "1", "--cases", String(Self.imageCases), "--seconds", "90",
                                         "--failures", failures])
        print(result.output.split(separator: "\n").last { $0.hasPrefix("image fuzzer:") } ?? "")
        XCTAssertEqual(result.status, 0, "the image fuzzer found something (inputs kept in \(failures) until the test ends):\n\(result.output)")
    }

    /// The ImageFuzzer executable beside the test bundle (swift build builds it with the tests).
    private func runImageFuzzer(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var binary = directory.appendingPathComponent("ImageFuzzer").path
        if !FileManager.default.isExecutableFile(atPath: binary) {
            binary = Self.corpus.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug/ImageFuzzer").path
        }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("ImageFuzzer not found beside the tests or at \(binary): run swift build")
            return (-1, "")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("extentfs-image-fuzz-\(getpid()).log")
        XCTAssertTrue(FileManager.default.createFile(atPath: output.path, contents: nil), "cannot create \(output.path)")
        let handle = try FileHandle(forWritingTo: output)
        defer { try? FileManager.default.removeItem(at: output) }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        // The engine's own log lines (orphans freed, damage refused) are expected: keep the fuzzer's.
        let lines = text.split(separator: "\n").filter { !$0.contains(" extentfs.") }
        return (process.terminationStatus, lines.joined(separator: "\n"))
    }
}
