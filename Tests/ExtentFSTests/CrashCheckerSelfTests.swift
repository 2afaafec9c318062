import XCTest
@testable import ExtentFS

/// The crash checks must not pass vacuously: on an image whose data is damaged on purpose they
/// must name the damage. (The engine bugs the crash tests find show the same from the other side.)
/// Nor may the harness blame the engine for what its own model gets wrong: how it tells a failed
/// write's target, and the states it allows a copy_file_range to leave, are checked here too.
final class CrashCheckerSelfTests: XCTestCase {
    func testCheckerNamesAnotherFilesDataZerosAndAMissingName() throws {
        let blockSize = 4096
        let volume = try CrashVolume(blockSize: blockSize)
        let runner = volume.runner
        for step: CrashStep in [
            .create(1, in: 0, name: "a", keepOpen: false), .write(1, offset: 0, length: 2 * blockSize), .fsync(1),
            .create(2, in: 0, name: "b", keepOpen: false), .write(2, offset: 0, length: 2 * blockSize), .fsync(2),
        ] { try runner.run(step) }
        let fs = try XCTUnwrap(runner.fs)
        let a = try XCTUnwrap(runner.model.node(id: 1)).ino
        let b = try XCTUnwrap(runner.model.node(id: 2)).ino
        let aBlocks = try fs.extentMap(a, offset: 0, length: UInt64(2 * blockSize)).map(\.physical)
        let bBlocks = try fs.extentMap(b, offset: 0, length: UInt64(2 * blockSize)).map(\.physical)
        try runner.run(.unmount)
        XCTAssertEqual(checkRecoveredImage(volume.image, model: runner.model, crashAfter: Int.max, fsckFirst: true).map(\.message), [],
                       "the undamaged image")

        // b's first block over a's first block (another file's data), zeros over b's second (lost data).
        let image = try XCTUnwrap(FileHandle(forUpdatingAtPath: volume.image))
        try image.seek(toOffset: try XCTUnwrap(bBlocks.first))
        let bBytes = try XCTUnwrap(try image.read(upToCount: blockSize))
        try image.seek(toOffset: try XCTUnwrap(aBlocks.first))
        try image.write(contentsOf: bBytes)
        try image.seek(toOffset: try XCTUnwrap(bBlocks.first) + UInt64(blockSize))
        try image.write(contentsOf: Data(count: blockSize))
        try image.close()
        let damaged = checkRecoveredImage(volume.image, model: runner.model, crashAfter: Int.max, fsckFirst: true)
        XCTAssertEqual(damaged.map(\.key).sorted(), ["foreign data /a", "zeros (fsynced data lost) /b"], "\(damaged.map(\.message))")
        XCTAssertTrue(damaged.first?.message.contains("a word /b wrote") ?? false, "\(damaged.map(\.message))")

        // A model in which a third file was fsynced: its name is missing from the image.
        let model = runner.model
        let c = model.addNode(id: 3, ino: 999, isDirectory: false, parent: FileSystem.rootInode, name: "c",
                              began: model.begin(flushes: Int.max - 1))
        model.fsyncReturned(c, returned: model.begin(flushes: Int.max - 1), by: "fsync /c", dataOnly: false)
        let missing = checkRecoveredImage(volume.image, model: model, crashAfter: Int.max, fsckFirst: false).map(\.key)
        XCTAssertTrue(missing.contains("durable name /c"), "\(missing)")
    }

    /// At block size 65536 the last page a write dirties can hold nothing but the first bytes of a
    /// word, cut short before its tag: still that file's data, not metadata (a metadata verdict
    /// expects the volume to shut down). A log record is metadata; zeros are anybody's.
    func testFaultTargetOfAPageHoldingOnlyACutWord() {
        let blockSize = 65536
        let model = CrashModel(blockSize: blockSize, rootBegan: CrashModel.When(flushes: 0, operation: 0))
        let file = model.addNode(id: 1, ino: 100, isDirectory: false, parent: FileSystem.rootInode, name: "b",
                                 began: model.begin(flushes: 0))
        let (offset, end) = (66991, 122887)
        model.changeData(of: file, began: model.begin(flushes: 0), operation: "write") { content in
            content = [UInt8](repeating: 0, count: offset) + CrashDataWord.bytes(file: 1, version: 1, offset: offset, count: end - offset)
        }
        // The file's second block at disk block 40: its page at file offset 122880 holds 7 bytes.
        let diskOffset = UInt64(40 * blockSize + (122880 - blockSize))
        let page = Array(file.current.bytes[122880...]) + [UInt8](repeating: 0, count: Page.size - (end - 122880))
        let fault = CrashRecorder.Fault(kind: .write, ordinal: 1, error: .ioError)
        func target(_ bytes: [UInt8], at offset: UInt64) -> FaultTarget { FaultTarget.of(.failed(fault, write: (offset, bytes)), model: model) }

        guard case .data(file: 1, _) = target(page, at: diskOffset) else {
            return XCTFail("a page holding only a cut word of /b: \(target(page, at: diskOffset))")
        }
        let record = Array("EXLOGREC".utf8) + [UInt8](repeating: 7, count: 504)
        guard case .metadata = target(record, at: UInt64(blockSize)) else {
            return XCTFail("a log record: \(target(record, at: UInt64(blockSize)))")
        }
        let zeros = [UInt8](repeating: 0, count: Page.size)
        guard case .unclassified = target(zeros, at: diskOffset) else { return XCTFail("a page of zeros: \(target(zeros, at: diskOffset))") }
    }

    /// copy_file_range between offsets at the same place in a block: the head up to a block
    /// boundary, the whole blocks, the tail; elsewhere one piece.
    func testCopyRangePieces() {
        XCTAssertEqual(CopyRangePieces.split(sourceOffset: 150120, destinationOffset: 84584, length: 133703, blockSize: 65536),
                       [0..<46488, 46488..<112024, 112024..<133703])
        XCTAssertEqual(CopyRangePieces.split(sourceOffset: 8192, destinationOffset: 4096, length: 10000, blockSize: 4096),
                       [0..<8192, 8192..<10000])
        XCTAssertEqual(CopyRangePieces.split(sourceOffset: 100, destinationOffset: 101, length: 10000, blockSize: 4096), [0..<10000])
        XCTAssertEqual(CopyRangePieces.split(sourceOffset: 100, destinationOffset: 100, length: 50, blockSize: 4096), [0..<50])
    }
}
