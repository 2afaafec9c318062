import XCTest
@testable import ExtentFS

/// The crash checks must not pass vacuously: on an image whose data is damaged on purpose they
/// must name the damage. (The engine bugs the crash tests find show the same from the other side.)
/// Nor may the harness blame the engine for what its own model gets wrong: the states it allows a
/// copy_file_range to leave are checked here too.
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
