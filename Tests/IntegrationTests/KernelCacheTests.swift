import CExerciseSyscalls
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Space operations make the kernel write back what mmap dirtied before they change a file, and
/// the kernel sends those pages back to the daemon as WRITE requests while the operation waits.
final class KernelCacheTests: XCTestCase {
    /// Twice as many files as the daemon has loop threads, each dirtied through a shared mapping,
    /// then an insert into each at once: every insert waits for its WRITEs, which must still find
    /// a thread to serve them (ExtentFSFuse/SpaceWorkers.swift). When the operations ran on the
    /// loop threads, all 16 waited in the kernel for WRITEs nobody served and the mount hung.
    func testInsertsIntoManyMmapDirtiedFilesAtOnceFinish() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let threads = 32
        let fileSize = 256 << 10
        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "128M")
            try volume.mount()
            let group = DispatchGroup()
            let failures = FailureList()
            let barrier = ThreadBarrier(count: threads)
            for index in 0..<threads {
                group.enter()
                let path = volume.path("mapped-\(index)")
                Thread.detachNewThread {
                    defer { group.leave() }
                    do {
                        try dirtyThenInsert(path, fileSize: fileSize, blockSize: blockSize, stamp: UInt8(index + 1),
                                            barrier: barrier)
                    } catch {
                        failures.append("\(path): \(error)")
                    }
                }
            }
            if group.wait(timeout: .now() + 120) == .timedOut {
                XCTFail("bs \(blockSize): \(threads) inserts into mmap-dirtied files did not finish in 120 s; aborting the mount")
                abortConnection(volume.mountPoint)
                _ = group.wait(timeout: .now() + 30)
            }
            XCTAssertEqual(failures.items, [], "bs \(blockSize)")
            try volume.unmount()
            try volume.requireClean("bs \(blockSize)")
        }
    }
}

/// Fills a file through a shared mapping (one stamp byte per page), waits for the others, inserts
/// a block at 0 through the ioctl (no msync first: the daemon's invalidation writes the pages
/// back), then checks that each stamp moved up by the block.
private func dirtyThenInsert(_ path: String, fileSize: Int, blockSize: Int, stamp: UInt8,
                             barrier: ThreadBarrier) throws {
    let fd = try openFile(path, O_RDWR | O_CREAT | O_EXCL)
    defer { close(fd) }
    try sys("ftruncate", ftruncate(fd, off_t(fileSize)))
    var error: Int32 = 0
    guard let mapping = exercise_mmap_shared(fd, fileSize, 0, &error) else { throw SyscallError(call: "mmap", code: error) }
    for page in stride(from: 0, to: fileSize, by: 4096) { mapping.storeBytes(of: stamp, toByteOffset: page, as: UInt8.self) }
    barrier.wait()
    let result = exercise_insert_range(fd, 0, UInt64(blockSize))
    munmap(mapping, fileSize)
    guard result == 0 else { throw SyscallError(call: "insert", code: -result) }
    let contents = try readRange(fd, offset: 0, count: fileSize + blockSize + 1, path: path)
    guard contents.count == fileSize + blockSize else { throw HarnessError("size \(contents.count) after the insert") }
    for page in stride(from: 0, to: fileSize, by: 4096) where contents[page + blockSize] != stamp {
        throw HarnessError("the byte written through the mapping at \(page) is not at \(page + blockSize)")
    }
}

/// Aborts a hung FUSE connection, so that threads waiting on it get ENOTCONN and the test can
/// clean up (the connection is named by the mount's device minor in fusectl).
private func abortConnection(_ mountPoint: String) {
    guard let device = MountTable.entry(at: mountPoint)?.device, let minor = device.split(separator: ":").last else { return }
    let connections = "/sys/fs/fuse/connections"
    if (try? FileManager.default.contentsOfDirectory(atPath: connections))?.isEmpty ?? true {
        _ = try? ProcessRunner.run("/bin/mount", ["-t", "fusectl", "none", connections], timeout: 30)
    }
    _ = try? "1".write(toFile: "\(connections)/\(minor)/abort", atomically: false, encoding: .utf8)
}

private final class ThreadBarrier: @unchecked Sendable {
    private let barrier = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    init(count: Int) { pthread_barrier_init(barrier, nil, UInt32(count)) }
    deinit {
        pthread_barrier_destroy(barrier)
        barrier.deallocate()
    }
    func wait() { pthread_barrier_wait(barrier) }
}

private final class FailureList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ item: String) { lock.withLock { list.append(item) } }
    var items: [String] { lock.withLock { list } }
}
