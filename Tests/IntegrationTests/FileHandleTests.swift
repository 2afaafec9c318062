import CIntegrationHelpers
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// File handles (name_to_handle_at, open_by_handle_at; what the kernel NFS server uses) that
/// outlive the kernel's inode cache and the mount: the daemon offers FUSE export support, so
/// the kernel asks it for an inode it no longer holds by LOOKUP of "." (and for a directory's
/// parent by "..") with the node id from the handle, which is the inode number, stable across
/// mounts and never reused. xfstests generic/426, 467, 477, 756 and 777 failed with ESTALE
/// before: without export support the kernel gives up on any handle whose inode it evicted.
final class FileHandleTests: XCTestCase {
    private func handle(_ path: String) throws -> extentfs_test_file_handle {
        var handle = extentfs_test_file_handle()
        let result = extentfs_test_handle_of(path, &handle)
        guard result == 0 else { throw HarnessError("name_to_handle_at(\(path)): \(errnoName(-result))") }
        return handle
    }

    /// The descriptor, or -errno.
    private func open(_ handle: extentfs_test_file_handle, on volume: TestVolume, flags: Int32 = O_RDONLY) -> Int32 {
        var handle = handle
        return extentfs_test_open_by_handle(volume.mountPoint, &handle, flags)
    }

    private func contents(of fd: Int32) throws -> [UInt8] {
        defer { close(fd) }
        return try readRange(fd, offset: 0, count: 1 << 16)
    }

    /// Evicts every unused inode from the kernel's caches, the FUSE mount's with them (each
    /// sends FORGET): the next use of a handle must go to the daemon.
    private func dropKernelCaches() throws {
        let fd = try openFile("/proc/sys/vm/drop_caches", O_WRONLY)
        defer { close(fd) }
        try writeAll(fd, Array("3\n".utf8), path: "/proc/sys/vm/drop_caches")
    }

    func testHandlesOutliveTheInodeCacheAndARemountAndGoStaleWhenTheFileIsDeleted() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: MountHarness.blockSizes.last ?? 4096, imageSize: "64M")
        try volume.mount()
        try makeDirectory(volume.path("a"))
        try makeDirectory(volume.path("a/b"))
        let data = TestContent.bytes(seed: 3, count: 10_000)
        try createFile(volume.path("a/b/file"), contents: data)
        try createFile(volume.path("doomed"), contents: Array("doomed".utf8))
        let fileHandle = try handle(volume.path("a/b/file"))
        let directoryHandle = try handle(volume.path("a/b"))
        let doomedHandle = try handle(volume.path("doomed"))
        let fileInode = try fileStatus(volume.path("a/b/file")).st_ino

        // Evicted from the kernel's cache: the daemon finds the file by "." and the directory's
        // path back to the root by ".." (the LOOKUPs it serves show the kernel had to ask).
        try dropKernelCaches()
        let lookupsBefore = try volume.stats().requestCount("LOOKUP")
        let fd = open(fileHandle, on: volume)
        XCTAssertGreaterThan(try volume.stats().requestCount("LOOKUP"), lookupsBefore, "the kernel still had the inode")
        XCTAssertGreaterThanOrEqual(fd, 0, "open_by_handle_at after drop_caches: \(errnoName(-fd))")
        if fd >= 0 { XCTAssertEqual(try contents(of: fd).prefix(data.count + 1), data[...]) }
        try dropKernelCaches()
        let directory = open(directoryHandle, on: volume, flags: O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(directory, 0, "a directory's handle after drop_caches: \(errnoName(-directory))")
        if directory >= 0 {
            var st = stat()
            XCTAssertEqual(fstatat(directory, "file", &st, 0), 0)
            XCTAssertEqual(st.st_ino, fileInode)
            close(directory)
        }

        // A handle whose generation does not match is stale, cached or not.
        var forged = fileHandle
        withUnsafeMutableBytes(of: &forged.bytes) { $0[8] ^= 0xFF }
        XCTAssertEqual(open(forged, on: volume), -ESTALE)
        try dropKernelCaches()
        XCTAssertEqual(open(forged, on: volume), -ESTALE)

        // A deleted file's handle is stale.
        try sys("unlink(doomed)", unlink(volume.path("doomed")))
        try dropKernelCaches()
        XCTAssertEqual(open(doomedHandle, on: volume), -ESTALE)

        // Node ids and generations are the image's: the same handles work on the next mount.
        try volume.remountChecked("with handles out")
        let afterRemount = open(fileHandle, on: volume)
        XCTAssertGreaterThanOrEqual(afterRemount, 0, "open_by_handle_at after a remount: \(errnoName(-afterRemount))")
        if afterRemount >= 0 { XCTAssertEqual(try contents(of: afterRemount).prefix(data.count + 1), data[...]) }
        let directoryAfterRemount = open(directoryHandle, on: volume, flags: O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(directoryAfterRemount, 0, "a directory's handle after a remount: \(errnoName(-directoryAfterRemount))")
        if directoryAfterRemount >= 0 { close(directoryAfterRemount) }
        XCTAssertEqual(open(doomedHandle, on: volume), -ESTALE)
        try volume.unmount()
        try volume.requireClean("at the end")
    }
}
