import XCTest
@testable import ExtentFS
@testable import ExtentFSCore

/// Small overwrites of blocks a file alone maps, none of their pages cached, go straight to the
/// image (FileSystem+WriteThrough.swift): nothing is cached, reads and a remount see them, fsync
/// makes them durable; every other write goes through the cache as before, with the same result.
final class WriteThroughTests: XCTestCase {
    private let fileBytes = 1 << 20

    /// A file written, committed and out of the cache (remounted).
    private func volumeWithFile(blockSize: Int = 4096) throws -> (TestVolume, InodeNumber, [UInt8]) {
        try TestVolume.withFile(bytes: fileBytes, seed: 11, blockSize: blockSize)
    }

    private func writtenThrough(_ volume: TestVolume) -> UInt64 {
        volume.fs.engineCounters.writtenThroughBytes.load(ordering: .relaxed)
    }

    func testSmallOverwritesGoStraightToTheImageAndLast() throws {
        for blockSize in [1024, 4096] {
            let (volume, ino, original) = try volumeWithFile(blockSize: blockSize)
            var data = original
            var generator = SeededGenerator(seed: 4)
            var expectedBytes = 0
            var lastEnd = -1
            for round in 0..<50 {
                let pages = [1, 2, 16][round % 3]
                var page = Int.random(in: 0..<(fileBytes / Page.size - pages), using: &generator)
                if page * Page.size == lastEnd { page = (page + 32) % (fileBytes / Page.size - pages) }
                let bytes = pattern(pages * Page.size, seed: UInt64(100 + round))
                XCTAssertEqual(try volume.write(ino, bytes, at: UInt64(page * Page.size)), bytes.count)
                data.replaceSubrange(page * Page.size..<page * Page.size + bytes.count, with: bytes)
                expectedBytes += bytes.count
                lastEnd = page * Page.size + bytes.count
            }
            XCTAssertEqual(writtenThrough(volume), UInt64(expectedBytes), "block size \(blockSize)")
            XCTAssertEqual(volume.fs.cache.cachedPages, 0, "a write through left pages cached")
            XCTAssertTrue(try volume.read(ino, fileBytes, at: 0) == data, "read after writes through")
            try volume.fs.fsync(ino, dataOnly: true)
            try volume.withCrashedCopy { crashed in
                var bytes = [UInt8](repeating: 0, count: fileBytes)
                try bytes.withUnsafeMutableBytes { target in
                    try crashed.read(ino, offset: 0, count: fileBytes) { target.copyMemory(from: $0) }
                }
                XCTAssertTrue(bytes == data, "a write through acknowledged by fdatasync was lost in a crash")
            }
            try volume.remount()
            XCTAssertTrue(try volume.read(ino, fileBytes, at: 0) == data, "after remount")
            try volume.unmountAndCheck()
        }
    }

    func testEveryOtherWriteGoesThroughTheCache() throws {
        let (volume, ino, original) = try volumeWithFile()
        var data = original
        func write(_ bytes: [UInt8], at offset: Int, _ what: String) throws {
            let before = writtenThrough(volume)
            XCTAssertEqual(try volume.write(ino, bytes, at: UInt64(offset)), bytes.count, what)
            XCTAssertEqual(writtenThrough(volume), before, "\(what) was written through")
            let end = offset + bytes.count
            if end > data.count { data += [UInt8](repeating: 0, count: end - data.count) }
            data.replaceSubrange(offset..<end, with: bytes)
        }
        let page = Page.size
        try write(pattern(100, seed: 1), at: 5 * page + 7, "a write of part of a page")
        try write(pattern(page, seed: 2), at: 9 * page + 512, "an unaligned write")
        try write(pattern(page, seed: 3), at: 5 * page, "a write over a cached page")
        try write(pattern(page, seed: 4), at: 6 * page, "a write where the last one ended")
        try write(pattern(FileSystem.maxWriteThroughBytes + page, seed: 5), at: 40 * page, "a long write")
        try write(pattern(2 * page, seed: 6), at: fileBytes - page, "a write past the end")

        try volume.fs.fallocate(ino, offset: UInt64(100 * page), length: UInt64(4 * page), mode: [.punchHole, .keepSize])
        data.replaceSubrange(100 * page..<104 * page, with: [UInt8](repeating: 0, count: 4 * page))
        try write(pattern(page, seed: 7), at: 101 * page, "a write into a hole")

        let copy = try volume.create("copy")
        _ = try volume.fs.clone(from: ino, sourceOffset: UInt64(200 * page), to: copy, destinationOffset: 0, length: UInt64(8 * page))
        try volume.remount()
        try write(pattern(page, seed: 8), at: 202 * page, "a write over a shared block")
        XCTAssertTrue(try volume.read(copy, 8 * page, at: 0) == Array(original[200 * page..<208 * page]),
                      "the clone saw its source's overwrite")

        XCTAssertTrue(try volume.read(ino, data.count, at: 0) == data)
        try volume.remount()
        XCTAssertTrue(try volume.read(ino, data.count, at: 0) == data, "after remount")
        try volume.unmountAndCheck()
    }

    /// An O_DIRECT overwrite of that shape is written through too (it was cached and written
    /// back at once before); one over a cached page still drops the page after writing it back.
    func testODirectOverwritesGoThroughAndLeaveNothingCached() throws {
        let (volume, ino, original) = try volumeWithFile()
        let fs: FileSystem = volume.fs
        var data = original
        let first = pattern(2 * Page.size, seed: 31), second = pattern(Page.size, seed: 32)
        _ = try first.withUnsafeBytes { try fs.write(ino, offset: UInt64(50 * Page.size), direct: true, $0) }
        XCTAssertEqual(writtenThrough(volume), UInt64(first.count))
        data.replaceSubrange(50 * Page.size..<52 * Page.size, with: first)
        // Part of a page rewritten with what it holds: the page is cached, the data unchanged.
        _ = try volume.write(ino, Array(original[60 * Page.size..<60 * Page.size + 100]), at: UInt64(60 * Page.size))
        _ = try second.withUnsafeBytes { try fs.write(ino, offset: UInt64(60 * Page.size), direct: true, $0) }
        XCTAssertEqual(writtenThrough(volume), UInt64(first.count), "a write over a cached page went through")
        data.replaceSubrange(60 * Page.size..<61 * Page.size, with: second)
        XCTAssertEqual(fs.cache.cachedPages, 0)
        XCTAssertTrue(try volume.read(ino, fileBytes, at: 0) == data)
        try volume.remount()
        XCTAssertTrue(try volume.read(ino, fileBytes, at: 0) == data)
        try volume.unmountAndCheck()
    }

    /// A read of the range while a write through is between its check and its write may return
    /// what was there before, but what it brought into the cache is gone once the write returns,
    /// so every read after it sees the write.
    func testAReadDuringAWriteThroughLeavesNothingOldCached() throws {
        let (volume, ino, original) = try volumeWithFile()
        let fs: FileSystem = volume.fs
        let gate = Gate(.writeThroughBeforeWrite)
        gate.install(on: fs)
        defer { fs.pauseHook = nil }
        let bytes = pattern(Page.size, seed: 21)
        let range = 30 * Page.size..<31 * Page.size
        let writer = Background { try bytes.withUnsafeBytes { try fs.write(ino, offset: UInt64(range.lowerBound), $0) } }
        XCTAssertTrue(gate.waitForArrival(), "the write did not go through")
        // A sequential read (from the start: random ones cache nothing) runs while the write
        // waits: it sees the old data and leaves its pages cached.
        XCTAssertTrue(try volume.read(ino, range.upperBound + Page.size, at: 0) == Array(original[..<(range.upperBound + Page.size)]))
        XCTAssertTrue(try fs.inode(ino).pages!.hasPages(from: UInt64(range.lowerBound / Page.size), to: UInt64(range.upperBound / Page.size)))
        gate.release()
        XCTAssertEqual(try writer.join(), Page.size)
        XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(range.lowerBound)) == bytes, "old data stayed cached")
        XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(range.upperBound)) == Array(original[range.upperBound..<range.upperBound + Page.size]))
        try volume.remount()
        XCTAssertTrue(try volume.read(ino, Page.size, at: UInt64(range.lowerBound)) == bytes)
        try volume.unmountAndCheck()
    }
}
