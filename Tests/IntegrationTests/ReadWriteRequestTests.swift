import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Reads and writes through a real mount cost one request each. The kernel would otherwise add
/// two: with FUSE_AUTO_INVAL_DATA it asks for the attributes before every read that follows a
/// write (the write marks them stale), and each GETATTR reply clears the inode's S_NOSEC, so the
/// next write asks GETXATTR security.capability before it goes out. The adapter leaves
/// AUTO_INVAL_DATA off (every change the kernel does not make itself is followed by an explicit
/// invalidation, KernelCache.swift), so neither happens; the data stays right.
final class ReadWriteRequestTests: XCTestCase {
    func testAMixOfReadsAndWritesSendsNoAttributeOrXattrRequests() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let path = volume.path("mix")
        let fileBytes = 4 << 20
        var expected = TestContent.bytes(seed: 21, count: fileBytes)
        try createFile(path, contents: expected)
        let fd = try openFile(path, O_RDWR)
        defer { close(fd) }

        let before = try volume.stats()
        let rounds = 300
        var generator = SystemRandomNumberGenerator()
        for round in 0..<rounds {
            let writeAt = Int.random(in: 0..<fileBytes / 4096, using: &generator) * 4096
            let bytes = TestContent.bytes(seed: UInt64(100 + round), count: 4096)
            try writeAll(fd, bytes, at: writeAt, path: path)
            expected.replaceSubrange(writeAt..<writeAt + 4096, with: bytes)
            let readAt = Int.random(in: 0..<fileBytes / 4096, using: &generator) * 4096
            XCTAssertTrue(try readRange(fd, offset: readAt, count: 4096, path: path)[...] == expected[readAt..<readAt + 4096],
                          "round \(round): read at \(readAt)")
        }
        let after = try volume.stats()
        func sent(_ opcode: String) -> UInt64 { after.requestCount(opcode) - before.requestCount(opcode) }
        XCTAssertGreaterThanOrEqual(sent("WRITE"), UInt64(rounds))
        // `extentfs stats` itself may look the mount point up; a handful, not one per round.
        XCTAssertLessThan(sent("GETATTR"), 10, "attributes fetched before reads")
        XCTAssertLessThan(sent("GETXATTR"), 10, "security.capability asked before writes")
        XCTAssertTrue(try readRange(fd, offset: 0, count: fileBytes, path: path) == expected)
    }

    /// The daemon raises its mount's kernel readahead to its largest READ (1 MiB; the kernel's
    /// default is 128 KiB, which FUSE_INIT cannot raise), so a cold sequential read of 128 KiB at
    /// a time reaches it as READs of up to 1 MiB: 4 MiB in far fewer than the 32 READs of 128 KiB
    /// it took before (KernelReadahead.swift).
    func testASequentialReadReachesTheDaemonInLargeReads() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let path = volume.path("stream")
        let fileBytes = 4 << 20
        let expected = TestContent.bytes(seed: 22, count: fileBytes)
        try createFile(path, contents: expected)
        // A new mount: the kernel holds none of the file.
        try volume.unmount()
        try volume.mount()
        let device = try XCTUnwrap(MountTable.entry(at: volume.mountPoint)?.device)
        let bdi = "/sys/class/bdi/\(device)/read_ahead_kb"
        XCTAssertEqual(try String(contentsOfFile: bdi, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "1024")

        let before = try volume.stats()
        let fd = try openFile(path, O_RDONLY)
        defer { close(fd) }
        var read: [UInt8] = []
        while read.count < fileBytes {
            read += try readRange(fd, offset: read.count, count: 128 << 10, path: path)
        }
        XCTAssertTrue(read == expected)
        let reads = try volume.stats().requestCount("READ") - before.requestCount("READ")
        XCTAssertGreaterThan(reads, 0)
        XCTAssertLessThanOrEqual(reads, 12, "READs for 4 MiB read 128 KiB at a time")
    }
}
