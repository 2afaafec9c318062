import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The lookup counts the daemon keeps for inodes its table let go are bounded through a real
/// mount: past the limit it asks the kernel to let go of inodes it does not use
/// (FUSE_NOTIFY_PRUNE), and the kernel's FORGETs arrive, which without the ask come only under
/// memory pressure. Names still resolve to the same inodes afterwards.
final class KernelInodePruningTests: XCTestCase {
    func testTheKernelIsAskedToLetGoOfInodesPastTheLimit() throws {
        try walkAfterRemount(readOnly: false)
    }

    /// A read-only mount has nothing to write back or commit, but its flusher asks all the same.
    func testAReadOnlyMountAsksToo() throws {
        try walkAfterRemount(readOnly: true)
    }

    /// Creates 5,000 files, remounts (read-only when asked), looks each up once, and expects the
    /// kernel's FORGETs and every file to keep its inode number after them.
    private func walkAfterRemount(readOnly: Bool) throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        // A 1 MiB metadata cache: a table of 512 KiB, and the limit's floor of 1,024 counts.
        let arguments = ["--metadata-cache-size", "1M"]
        try volume.mount(arguments: arguments)
        let directory = volume.path("d")
        try sys("mkdir", mkdir(directory, 0o755))
        let files = 5_000
        for index in 0..<files {
            let fd = try openFile(directory + "/f\(index)", O_CREAT | O_WRONLY)
            close(fd)
        }
        try volume.unmount()
        try volume.mount(arguments: arguments + (readOnly ? ["-o", "ro"] : []))

        var numbers: [ino_t] = []
        for index in 0..<files {
            var st = stat()
            try sys("stat", stat(directory + "/f\(index)", &st))
            numbers.append(st.st_ino)
        }
        var forgets: UInt64 = 0
        for _ in 0..<100 {
            let stats = try volume.stats()
            forgets = stats.requestCount("FORGET") + stats.requestCount("BATCH_FORGET")
            if forgets > 0 { break }
            usleep(100_000)
        }
        XCTAssertGreaterThan(forgets, 0, "the kernel sent no FORGET: was it asked to let go (Linux 6.18 or later)?")

        for index in 0..<files {
            var st = stat()
            try sys("stat", stat(directory + "/f\(index)", &st))
            XCTAssertEqual(st.st_ino, numbers[index], "f\(index) after the kernel let go")
        }
        try volume.unmount()
        let checked = try volume.fsck()
        XCTAssertTrue(checked.succeeded, "\(checked)")
    }
}
