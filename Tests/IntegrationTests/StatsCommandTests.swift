import CExerciseSyscalls
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `extentfs stats MOUNTPOINT` through a real mount: the counters move as the I/O done says they
/// must. Only what the daemon is sure to see is asserted: the kernel caches pages and
/// attributes and reads ahead as it likes, so a count is checked against a floor, not a value.
final class StatsCommandTests: XCTestCase {
    private func dropKernelPageCache() throws {
        let fd = try openFile("/proc/sys/vm/drop_caches", O_WRONLY)
        defer { close(fd) }
        try writeAll(fd, Array("1\n".utf8), path: "/proc/sys/vm/drop_caches")
    }

    private func readFirst(_ bytes: Int, of path: String) throws {
        let fd = try openFile(path, O_RDONLY)
        defer { close(fd) }
        _ = try readRange(fd, offset: 0, count: bytes, path: path)
    }

    func testCountersFollowRequestsCacheWritebackAndTheLog() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: MountHarness.blockSizes.last ?? 4096, imageSize: "64M")
        try volume.mount()
        let fresh = try volume.stats()
        XCTAssertEqual(fresh.values["state"], "running")
        XCTAssertGreaterThan(fresh.number("log-capacity-bytes"), 0)
        XCTAssertGreaterThan(fresh.number("cache-budget-bytes"), 0)

        // A file written and fsynced: created, written, written back, committed.
        let file = volume.path("data")
        let data = TestContent.bytes(seed: 11, count: 1 << 20)
        let fd = try openFile(file, O_CREAT | O_WRONLY | O_TRUNC)
        try writeAll(fd, data, path: file)
        try sys("fsync", fsync(fd))
        close(fd)
        // A name that does not exist: LOOKUP answered with ENOENT.
        var st = stat()
        XCTAssertEqual(lstat(volume.path("no-such-name"), &st), -1)
        let written = try volume.stats()
        XCTAssertGreaterThanOrEqual(written.requests["CREATE"]?.count ?? 0, 1)
        XCTAssertGreaterThanOrEqual(written.requests["WRITE"]?.count ?? 0, 1)
        XCTAssertEqual(written.requests["WRITE"]?.errors, 0)
        XCTAssertGreaterThanOrEqual(written.requests["FSYNC"]?.count ?? 0, 1)
        XCTAssertGreaterThan(written.requests["LOOKUP"]?.errors ?? 0, fresh.requests["LOOKUP"]?.errors ?? 0,
                             "the failed lookup is not counted")
        XCTAssertGreaterThanOrEqual(written.number("written-back-bytes"), UInt64(data.count))
        XCTAssertGreaterThanOrEqual(written.number("log-commits"), 1)
        XCTAssertGreaterThan(written.number("log-used-bytes"), 0)
        XCTAssertEqual(written.number("writeback-errors"), 0)
        XCTAssertEqual(written.number("dirty-bytes"), 0, "fsync left dirty data")

        // A new daemon starts cold: the first read of the file misses in its cache.
        try volume.unmount()
        try volume.mount()
        let remounted = try volume.stats()
        XCTAssertEqual(remounted.number("page-cache-hits"), 0)
        XCTAssertEqual(remounted.values["written-through-bytes"], "0", "version 2's counter, from zero")
        // A whole-page overwrite of written blocks the daemon does not cache goes straight to the
        // image (FileSystem+WriteThrough.swift); version 1's command still answers, as version 1.
        let overwrite = TestContent.bytes(seed: 12, count: 4096)
        let writer = try openFile(file, O_WRONLY)
        XCTAssertEqual(pwrite(writer, overwrite, overwrite.count, 512 << 10), overwrite.count)
        XCTAssertEqual(exercise_stats_version1(writer), 1)
        close(writer)
        XCTAssertEqual(try volume.stats().number("written-through-bytes"), UInt64(overwrite.count))
        let pages: UInt64 = 16  // 64 KiB of 4 KiB pages: what the first read asks for at least
        try readFirst(Int(pages) * 4096, of: file)
        let cold = try volume.stats()
        XCTAssertGreaterThanOrEqual(cold.number("page-cache-misses"), pages, "a cold read")
        XCTAssertGreaterThanOrEqual(cold.number("cached-bytes"), pages * 4096)
        // The kernel forgets its pages; the daemon keeps its own: the same read hits.
        try dropKernelPageCache()
        try readFirst(Int(pages) * 4096, of: file)
        let warm = try volume.stats()
        XCTAssertGreaterThanOrEqual(warm.number("page-cache-hits"), cold.number("page-cache-hits") + pages, "a re-read the kernel asked for again")
        XCTAssertGreaterThan(warm.requests["READ"]?.count ?? 0, cold.requests["READ"]?.count ?? 0)
        XCTAssertEqual(warm.values["state"], "running")

        // Not a mount of extentfs: one line, exit 1.
        let elsewhere = try harness.extentfs(["stats", harness.workDirectory], timeout: 30)
        XCTAssertEqual(elsewhere.status, 1, "\(elsewhere)")
        XCTAssertTrue(elsewhere.stderr.contains("not on an extentfs mount"), "\(elsewhere)")
        try volume.unmount()
        try volume.requireClean()
    }
}
