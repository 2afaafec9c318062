import CExerciseSyscalls
import CIntegrationHelpers
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// Failures xfstests found (issue 12), each replayed through a mount.
final class XfstestsRegressionTests: XCTestCase {
    /// generic/092: truncate(2) to the current size frees what fallocate KEEP_SIZE put past EOF.
    func testTruncateToTheSameSizeFreesPreallocation() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let path = volume.path("f")
            let size = 5 * blockSize + 100
            try createFile(path, contents: TestContent.bytes(seed: 1, count: size))
            let fd = try openFile(path, O_RDWR)
            defer { close(fd) }
            try sys("fsync", fsync(fd))
            let written = try fileStatus(path).st_blocks
            let keepSize: Int32 = 1  // FALLOC_FL_KEEP_SIZE
            try check(exercise_fallocate(fd, keepSize, Int64(size), Int64(16 * blockSize)), "fallocate -k")
            XCTAssertGreaterThan(try fileStatus(path).st_blocks, written, "bs \(blockSize): preallocated")
            try sys("ftruncate to the same size", ftruncate(fd, off_t(size)))
            XCTAssertEqual(try fileStatus(path).st_blocks, written, "bs \(blockSize): st_blocks after truncate to the same size")
            XCTAssertEqual(try fileStatus(path).st_size, off_t(size))
            close(fd)
            try volume.remountChecked("bs \(blockSize)")
            XCTAssertEqual(try fileStatus(path).st_blocks, written, "bs \(blockSize): after remount")
            try volume.unmount()
        }
    }

    /// generic/517: FIDEDUPERANGE of a source's unaligned tail at its EOF into the middle of a
    /// file reports the length asked for, as vfs_dedupe_file_range does, though the partial
    /// last block is not shared. xfs_io through the preload library, with generic/517's numbers.
    func testDedupeOfAnUnalignedEOFTailReportsTheLengthAskedFor() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let preload = URL(fileURLWithPath: harness.binary).deletingLastPathComponent()
            .appendingPathComponent("libExtentFSPreload.so").path
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let foo = volume.path("foo")
        let bar = volume.path("bar")
        try xfsIO(preload, ["-f", "-c", "pwrite -S 0x6b 0 2518890", "-c", "pwrite -S 0xae 2518890 102398", foo])
        try xfsIO(preload, ["-f", "-c", "pwrite -S 0x6b 0 557771", bar])
        let before = try readWholeFile(foo)
        let output = try xfsIO(preload, ["-c", "dedupe \(bar) 0 1957888 557771", foo])
        XCTAssertTrue(output.contains("deduped 557771/557771 bytes at offset 1957888"), "xfs_io said: \(output)")
        XCTAssertTrue(try readWholeFile(foo) == before, "the dedupe changed the data")
        try volume.remountChecked("after the dedupe")
        XCTAssertTrue(try readWholeFile(foo) == before, "the data after a remount")
        try volume.unmount()
    }

    /// generic/451: buffered reads after asynchronous O_DIRECT writes (io_submit) see the new
    /// data, while another thread keeps reading the file through the kernel's cache. They saw
    /// the old data: nothing dropped the pages cached while the write was in flight.
    func testBufferedReadAfterAnAsyncDirectWriteSeesIt() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let path = volume.path("f")
            let size = 4 << 20
            try createFile(path, contents: [UInt8](repeating: 0x30, count: size))
            var outcome = extentfs_async_direct_outcome()
            let result = extentfs_test_async_direct_writes(path, UInt64(size), 40, &outcome)
            XCTAssertEqual(result, 0, "bs \(blockSize): \(errnoName(-result))")
            XCTAssertEqual(outcome.rounds, 40, "bs \(blockSize)")
            XCTAssertEqual(outcome.stale_rounds, 0,
                           "bs \(blockSize): \(outcome.stale_rounds) of \(outcome.rounds) writes left \(outcome.stale_bytes) stale bytes in the kernel's cache")
            try volume.remountChecked("bs \(blockSize)")
            try volume.unmount()
        }
    }

    private func check(_ result: Int32, _ what: String) throws {
        if result < 0 { throw SyscallError(call: what, code: -result) }
    }

    @discardableResult
    private func xfsIO(_ preload: String, _ arguments: [String]) throws -> String {
        let result = try ProcessRunner.run("/usr/bin/env", ["LD_PRELOAD=\(preload)", "xfs_io"] + arguments, timeout: 60)
        guard result.succeeded, result.stderr.isEmpty else {
            throw HarnessError("xfs_io \(arguments.joined(separator: " ")) under the preload: \(result)")
        }
        return result.stdout
    }
}
