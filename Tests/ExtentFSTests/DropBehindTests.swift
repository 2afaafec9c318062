import XCTest
@testable import ExtentFS
@testable import ExtentFSCore

/// A streaming reader drops the clean pages a readahead window behind it (FileSystem+Read.swift),
/// and a streaming writer the pages writeback cleaned behind it (Writeback.swift): a file read or
/// written whole leaves a few windows cached, not the file, while random writers, dirty pages
/// and pages in use keep theirs (random readers cache nothing: UncachedReadTests); the data is
/// right either way.
final class DropBehindTests: XCTestCase {
    private let fileBytes = 8 << 20
    private let chunk = 128 << 10
    private var window: Int { FileSystem.maxReadaheadPages }

    /// A volume whose cache could hold the whole file twice, with the file written, committed and
    /// out of the cache (remounted).
    private func volumeWithFile() throws -> (TestVolume, InodeNumber, [UInt8]) {
        try TestVolume.withFile(bytes: fileBytes, seed: 5, cacheBytes: 2 * fileBytes)
    }

    private func readSequentially(_ volume: TestVolume, _ ino: InodeNumber, expecting data: [UInt8]) throws {
        for offset in stride(from: 0, to: data.count, by: chunk) {
            let bytes = try volume.read(ino, chunk, at: UInt64(offset))
            XCTAssertEqual(bytes[...], data[offset..<offset + chunk], "at \(offset)")
        }
    }

    func testASequentialReadLeavesAFewWindowsCached() throws {
        let (volume, ino, data) = try volumeWithFile()
        try readSequentially(volume, ino, expecting: data)
        // The window behind the last read, the last read, and what it read ahead (none at the end).
        let bound = window + chunk / Page.size + window
        XCTAssertLessThanOrEqual(volume.fs.cache.cachedPages, bound)
        XCTAssertGreaterThan(fileBytes / Page.size, 2 * bound, "the file must be larger than what stays")

        // A second pass from the start drops again.
        try readSequentially(volume, ino, expecting: data)
        XCTAssertLessThanOrEqual(volume.fs.cache.cachedPages, bound)
        try volume.unmountAndCheck()
    }

    func testDirtyPagesBehindTheReaderStay() throws {
        let (volume, ino, original) = try volumeWithFile()
        var data = original
        // Short of whole pages, so it is cached (a whole-page overwrite goes straight to disk).
        let written = Array(repeating: UInt8(0xEE), count: 3 * Page.size - 100)
        _ = try volume.write(ino, written, at: UInt64(10 * Page.size))
        data.replaceSubrange(10 * Page.size..<10 * Page.size + written.count, with: written)
        try readSequentially(volume, ino, expecting: data)
        XCTAssertEqual(volume.fs.cache.dirtyPages, 3, "a dirty page was dropped")
        XCTAssertEqual(try volume.read(ino, written.count, at: UInt64(10 * Page.size)), written)
        try volume.remount()
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.unmountAndCheck()
    }

    /// A new file written in chunks in the given order of offsets, and written back.
    private func writeInChunks(_ offsets: [Int], seed: UInt64) throws -> (TestVolume, InodeNumber, [UInt8]) {
        let volume = try TestVolume(size: 64 << 20, cacheBytes: 2 * fileBytes)
        let ino = try volume.create("written")
        let data = pattern(fileBytes, seed: seed)
        for offset in offsets {
            _ = try volume.write(ino, Array(data[offset..<offset + chunk]), at: UInt64(offset))
        }
        try volume.fs.sync()
        return (volume, ino, data)
    }

    func testAStreamingWriterLeavesAFewWindowsCachedOnceWrittenBack() throws {
        let (volume, ino, data) = try writeInChunks(Array(stride(from: 0, to: fileBytes, by: chunk)), seed: 8)
        // A window, and a few pages the flusher's own writeback held while this one dropped.
        XCTAssertLessThanOrEqual(volume.fs.cache.cachedPages, window + 64)
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.remount()
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.unmountAndCheck()
    }

    func testWritesOutOfOrderKeepTheirPages() throws {
        // Every chunk, backwards: no write starts where the last ended.
        let (volume, ino, data) = try writeInChunks(Array(stride(from: fileBytes - chunk, through: 0, by: -chunk)), seed: 6)
        XCTAssertEqual(volume.fs.cache.cachedPages, fileBytes / Page.size)
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.unmountAndCheck()
    }
}
