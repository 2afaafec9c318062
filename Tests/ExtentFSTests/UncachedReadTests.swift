import XCTest
@testable import ExtentFS

/// A random read of which no page is cached reads the disk into the reply and caches nothing
/// (FileSystem+UncachedRead.swift); one that finds a page cached, or continues the last read,
/// goes through the cache. The data is right either way: holes and unwritten blocks read as
/// zeros, dirty pages as written.
final class UncachedReadTests: XCTestCase {
    private let fileBytes = 4 << 20

    func testRandomReadsCacheNothingAndReadRight() throws {
        for blockSize in [1024, 4096, 65536] {
            let (volume, ino, original) = try TestVolume.withFile(bytes: fileBytes, seed: 7, blockSize: blockSize)
            var data = original
            // A hole and an unwritten range in the middle of the file, committed and out of the cache.
            try volume.fs.fallocate(ino, offset: 1 << 20, length: 256 << 10, mode: [.punchHole, .keepSize])
            try volume.fs.fallocate(ino, offset: 2 << 20, length: 256 << 10, mode: .zeroRange)
            for start in [1 << 20, 2 << 20] { data.replaceSubrange(start..<start + (256 << 10), with: [UInt8](repeating: 0, count: 256 << 10)) }
            try volume.remount()
            let fs: FileSystem = volume.fs

            var generator = SeededGenerator(seed: 3)
            let misses = fs.counters().pageCacheMisses
            var pagesRead: UInt64 = 0
            for _ in 0..<300 {
                let offset = Int.random(in: 1..<fileBytes - 1, using: &generator)
                let count = min(Int.random(in: 1...(96 << 10), using: &generator), fileBytes - offset)
                XCTAssertTrue(try volume.read(ino, count, at: UInt64(offset))[...] == data[offset..<offset + count],
                              "\(count) bytes at \(offset), block size \(blockSize)")
                pagesRead += UInt64((offset + count - 1) / Page.size - offset / Page.size + 1)
            }
            XCTAssertEqual(volume.fs.cache.cachedPages, 0, "a random read cached pages (block size \(blockSize))")
            XCTAssertEqual(fs.counters().pageCacheMisses - misses, pagesRead, "every page read around the cache is a miss")
            try volume.unmountAndCheck()
        }
    }

    /// A page written and not yet written back is cached, so a random read over it takes the
    /// cache's path and sees the write; the pages it read stay cached.
    func testARandomReadOverACachedPageSeesIt() throws {
        let (volume, ino, original) = try TestVolume.withFile(bytes: fileBytes, seed: 8)
        var data = original
        let written = pattern(100, seed: 9)
        let at = 300 * Page.size + 50
        XCTAssertEqual(try volume.write(ino, written, at: UInt64(at)), written.count)
        data.replaceSubrange(at..<at + written.count, with: written)
        XCTAssertEqual(volume.fs.cache.dirtyPages, 1)
        let start = 298 * Page.size + 7
        XCTAssertTrue(try volume.read(ino, 5 * Page.size, at: UInt64(start))[...] == data[start..<start + 5 * Page.size])
        XCTAssertEqual(volume.fs.cache.cachedPages, 6, "the read went around the cache")
        try volume.remount()
        XCTAssertTrue(try volume.read(ino, fileBytes, at: 0) == data)
        try volume.unmountAndCheck()
    }

    /// Reads that continue each other are sequential: they read ahead and cache.
    func testSequentialReadsStillCache() throws {
        let (volume, ino, original) = try TestVolume.withFile(bytes: fileBytes, seed: 10)
        let first = 100 * Page.size
        XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(first))[...] == original[first..<first + Page.size])
        XCTAssertEqual(volume.fs.cache.cachedPages, 0)
        for page in 101..<104 {
            XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(page * Page.size))[...] == original[page * Page.size..<(page + 1) * Page.size])
        }
        XCTAssertGreaterThanOrEqual(volume.fs.cache.cachedPages, 3 + 4, "the pages read and a window ahead")
        try volume.unmountAndCheck()
    }

    /// The store's interceptor sees file data read both ways, around the cache and into it (the
    /// cache's fills are scattered reads), as it sees metadata reads.
    func testTheStoreInterceptorSeesDataReadBothWays() throws {
        let (volume, ino, original) = try TestVolume.withFile(bytes: fileBytes, seed: 11)
        let counter = ReadCounter()
        try volume.remount(intercepting: counter)
        let afterMount = counter.lock.withLock { counter.bytes }
        let random = 700 * Page.size
        XCTAssertTrue(try volume.read(ino, 2 * Page.size, at: UInt64(random))[...] == original[random..<random + 2 * Page.size])
        XCTAssertEqual(volume.fs.cache.cachedPages, 0, "went around the cache")
        let aroundCache = counter.lock.withLock { counter.bytes } - afterMount
        XCTAssertGreaterThanOrEqual(aroundCache, 2 * Page.size, "the read around the cache was seen")
        for page in 0..<4 {
            XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(page * Page.size))[...] == original[page * Page.size..<(page + 1) * Page.size])
        }
        XCTAssertGreaterThan(volume.fs.cache.cachedPages, 0, "went through the cache")
        let throughCache = counter.lock.withLock { counter.bytes } - afterMount - aroundCache
        XCTAssertGreaterThanOrEqual(throughCache, volume.fs.cache.cachedPages * Page.size, "every page filled was seen")
        try volume.unmountAndCheck()
    }
}
