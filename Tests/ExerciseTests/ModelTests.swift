import XCTest
import ExtentFS
import ExtentFSExercise

/// The model's rules where XFS's are easy to get wrong, checked directly.
final class ModelTests: XCTestCase {
    private func zeros(_ model: inout Model, file: Int, size: UInt64) {
        _ = model.apply(.truncate(file: file, size: size), data: nil)
    }

    func testCollapseAndInsertMustBeAlignedAndInsideEOF() {
        var model = Model(blockSize: 4096, files: 1)
        zeros(&model, file: 0, size: 5 * 4096)
        XCTAssertEqual(model.apply(.fallocate(file: 0, offset: 1, length: 4096, mode: .collapseRange), data: nil), .failure(.invalidArgument))
        XCTAssertEqual(model.apply(.fallocate(file: 0, offset: 4096, length: 4 * 4096, mode: .collapseRange), data: nil),
                       .failure(.invalidArgument), "a collapse that reaches EOF")
        XCTAssertEqual(model.apply(.fallocate(file: 0, offset: 5 * 4096, length: 4096, mode: .insertRange), data: nil),
                       .failure(.invalidArgument), "an insert at EOF")
        XCTAssertEqual(model.apply(.fallocate(file: 0, offset: 4096, length: 2 * 4096, mode: .collapseRange), data: nil), .success)
        XCTAssertEqual(model.size(0), 3 * 4096)
        XCTAssertEqual(model.apply(.fallocate(file: 0, offset: 0, length: 4096, mode: .insertRange), data: nil), .success)
        XCTAssertEqual(model.size(0), 4 * 4096)
    }

    func testCloneTakesAnUnalignedTailOnlyAtBothEnds() {
        var model = Model(blockSize: 4096, files: 2)
        zeros(&model, file: 0, size: 4096 + 100)
        zeros(&model, file: 1, size: 3 * 4096)
        XCTAssertEqual(model.apply(.clone(source: 0, sourceOffset: 0, destination: 1, destinationOffset: 0, length: 4096 + 100), data: nil),
                       .failure(.invalidArgument), "the tail would cut into the destination's data")
        XCTAssertEqual(model.apply(.clone(source: 0, sourceOffset: 0, destination: 1, destinationOffset: 2 * 4096, length: 4096 + 100), data: nil),
                       .success, "the tail reaches past the destination's EOF")
        XCTAssertEqual(model.size(1), 3 * 4096 + 100)
        XCTAssertEqual(model.apply(.clone(source: 0, sourceOffset: 4096, destination: 1, destinationOffset: 0, length: 4096), data: nil),
                       .failure(.invalidArgument), "past the source's EOF")
        XCTAssertEqual(model.apply(.dedupe(source: 0, sourceOffset: 0, destination: 1, destinationOffset: 0, length: 4096 + 100), data: nil),
                       .dedupe(.same(bytes: 4096)), "dedupe shortens to whole blocks instead")
    }

    func testCopyRangeStopsAtTheSourceEOFAndRefusesOverlap() {
        var model = Model(blockSize: 4096, files: 1)
        zeros(&model, file: 0, size: 10_000)
        XCTAssertEqual(model.apply(.copyRange(source: 0, sourceOffset: 9000, destination: 0, destinationOffset: 20_000, length: 5000), data: nil),
                       .copied(1000))
        XCTAssertEqual(model.size(0), 21_000)
        XCTAssertEqual(model.apply(.copyRange(source: 0, sourceOffset: 0, destination: 0, destinationOffset: 100, length: 200), data: nil),
                       .failure(.invalidArgument))
        XCTAssertEqual(model.apply(.copyRange(source: 0, sourceOffset: 30_000, destination: 0, destinationOffset: 0, length: 10), data: nil),
                       .copied(0))
    }

    func testSeekChecksUseKnownHoles() {
        var model = Model(blockSize: 4096, files: 1)
        let data = [UInt8](repeating: 7, count: 3 * 4096)
        data.withUnsafeBytes { _ = model.apply(.write(file: 0, offset: 0, length: data.count, tag: 1), data: $0) }
        _ = model.apply(.fallocate(file: 0, offset: 4096, length: 4096, mode: .punchHole), data: nil)
        XCTAssertNil(model.checkSeek(0, offset: 0, whence: .hole, result: .success(4096)))
        XCTAssertNotNil(model.checkSeek(0, offset: 0, whence: .hole, result: .success(3 * 4096)), "skips the punched block")
        XCTAssertNotNil(model.checkSeek(0, offset: 0, whence: .hole, result: .success(100)), "lands on data")
        XCTAssertNil(model.checkSeek(0, offset: 4096, whence: .data, result: .success(2 * 4096)))
        XCTAssertNotNil(model.checkSeek(0, offset: 4096, whence: .data, result: .success(4096)), "data inside the punched block")
        XCTAssertNotNil(model.checkSeek(0, offset: 0, whence: .data, result: .failure(.noSuchAddressOrDevice)))
        XCTAssertNil(model.checkSeek(0, offset: 3 * 4096, whence: .data, result: .failure(.noSuchAddressOrDevice)))
    }

    func testGeneratorIsDeterministicPerSeed() {
        func sequence(_ seed: UInt64) -> [ExerciseOperation] {
            var generator = Generator(settings: .init(files: 2, blockSize: 1024), seed: seed)
            var model = Model(blockSize: 1024, files: 2)
            return (0..<500).map { _ in
                let operation = generator.next(model)
                let data = operation.writeBytes
                _ = data.withUnsafeBytes { model.apply(operation, data: $0) }
                return operation
            }
        }
        XCTAssertEqual(sequence(42), sequence(42))
        XCTAssertNotEqual(sequence(42), sequence(43))
    }

    func testReplayFilesRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let operations: [ExerciseOperation] = [
            .write(file: 0, offset: 1, length: 2, tag: 3), .read(file: 1, offset: 4, length: 5),
            .mapWrite(file: 0, offset: 6, length: 7, tag: 8), .mapRead(file: 0, offset: 9, length: 10),
            .truncate(file: 1, size: 11), .fallocate(file: 0, offset: 12, length: 13, mode: .zeroRangeKeepSize),
            .clone(source: 0, sourceOffset: 0, destination: 1, destinationOffset: 4096, length: 0),
            .dedupe(source: 1, sourceOffset: 0, destination: 0, destinationOffset: 0, length: 4096),
            .copyRange(source: 0, sourceOffset: 1, destination: 1, destinationOffset: 2, length: 3),
            .seek(file: 0, offset: 14, whence: .hole), .extentMap(file: 1), .fsync(file: 0), .reopen(file: 1), .remount,
        ]
        let failure = ExerciseFailure(index: 3, operation: operations[3], kind: .seek, message: "why\nand more")
        let file = ReplayFile(seed: 9, blockSize: 512, files: 2, cacheBytes: 1 << 18, mode: "in-process", failure: failure, operations: operations)
        let path = directory.path + "/round-trip.json"
        try file.write(to: path)
        let read = try ReplayFile.read(from: path)
        XCTAssertEqual(read.operations, operations)
        XCTAssertEqual(read.failure?.signature, failure.signature)
        XCTAssertEqual(read.blockSize, 512)
        XCTAssertEqual(read.seed, 9)
    }
}

private extension ExerciseOperation {
    /// What a write or map write puts in the file, as the runner makes it.
    var writeBytes: [UInt8] {
        switch self {
        case .write(_, let offset, let length, let tag), .mapWrite(_, let offset, let length, let tag):
            return DataPattern.bytes(count: length, fileOffset: offset, tag: tag)
        default:
            return []
        }
    }
}
