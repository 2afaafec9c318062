import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// The disk under the image fills up while a volume is mounted: its writes fail, and what was not
/// yet committed is lost. The user must hear it: `extentfs umount` exits non-zero and says changes
/// were lost (the engine leaves the message for it before letting go of the image), and nothing
/// fsynced before is lost.
final class ShutdownTests: XCTestCase {
    func testAFullHostDiskMakesUmountSayChangesWereLost() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let host = harness.workDirectory + "/small-host"
        let mountPoint = harness.workDirectory + "/shutdown-mnt"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try sys("mount a 4 MiB tmpfs on \(host)", mount("tmpfs", host, "tmpfs", 0, "size=4m"))
        defer { umount2(host, Int32(MNT_DETACH)) }
        let image = host + "/image.img"
        let formatted = try harness.extentfs(["mkfs", image, "--size", "64M"], timeout: 60)
        XCTAssertTrue(formatted.succeeded, "mkfs on the small host disk: \(formatted)")
        let mounted = try harness.extentfs(["mount", image, mountPoint, "--log", harness.workDirectory + "/shutdown.log"], timeout: 60)
        guard mounted.succeeded else { return XCTFail("mount: \(mounted)") }
        defer { if MountTable.isMounted(mountPoint) { _ = try? harness.extentfs(["umount", mountPoint], timeout: 120) } }

        let kept = [UInt8](repeating: 0x4B, count: 64 << 10)
        let keptFd = try sys("create kept", open(mountPoint + "/kept", O_WRONLY | O_CREAT, 0o644))
        XCTAssertEqual(kept.withUnsafeBytes { write(keptFd, $0.baseAddress, $0.count) }, kept.count)
        try sys("fsync kept", fsync(keptFd))
        close(keptFd)

        // 16 MiB of files on a 4 MiB host disk: writeback and then the log run out of room.
        var failures = 0
        for index in 0..<16 {
            let fd = open(mountPoint + "/fill\(index)", O_WRONLY | O_CREAT, 0o644)
            guard fd >= 0 else { failures += 1; continue }
            let data = [UInt8](repeating: UInt8(index), count: 1 << 20)
            if data.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) != data.count { failures += 1 }
            if fsync(fd) != 0 { failures += 1 }
            close(fd)
        }
        XCTAssertGreaterThan(failures, 0, "16 MiB of fsynced files fit on a 4 MiB host disk")

        let unmounted = try harness.extentfs(["umount", mountPoint], timeout: 120)
        XCTAssertFalse(unmounted.succeeded || unmounted.timedOut || unmounted.terminatedBySignal,
                       "umount after the host disk filled up must fail: \(unmounted)")
        XCTAssertTrue(unmounted.stderr.contains("lost"), "umount does not say changes were lost: \(unmounted)")
        XCTAssertFalse(MountTable.isMounted(mountPoint), "still mounted after umount: \(unmounted)")

        // What was fsynced before the disk filled is there; the image is consistent.
        let checked = try harness.extentfs(["fsck", image], timeout: 120)
        XCTAssertTrue(checked.succeeded, "fsck after the failed unmount: \(checked)")
        let remounted = try harness.extentfs(["mount", image, mountPoint], timeout: 60)
        guard remounted.succeeded else { return XCTFail("mount after the failed unmount: \(remounted)") }
        let read = try readWholeFile(mountPoint + "/kept")
        XCTAssertEqual(read, kept, "the file fsynced before the disk filled")
    }
}
