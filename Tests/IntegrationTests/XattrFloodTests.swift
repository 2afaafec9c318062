import CIntegrationHelpers
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// An unprivileged user on a shared mount (allow_other) fills the volume with extended
/// attributes. The security issue saw this take everyone's changes with it: 1,500 values of
/// 64 KiB in 0.2 s on a 64 MiB volume, `df` still at 1%, the next commit failing with ENOSPC,
/// `extentfs umount` exiting 0 and every change since mount gone after a remount. Now each
/// request that does not fit gets ENOSPC, one file's xattrs stop at their bound, and nothing of
/// anyone's is lost. Seen failing with the binary from before the per-inode bound and the
/// running charge: all 5,000 values of 64 KiB went onto the 64 MiB volume, `df` showed 62 MiB
/// free, and umount exited 1, the changes lost.
final class XattrFloodTests: XCTestCase {
    func testAUsersXattrFloodStopsAtTheRequestAndLosesNothing() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let blockSize = MountHarness.blockSizes.last ?? 4096
        let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
        // The image itself, which holds every file's bytes, is for its owner only (mkfs).
        var imageStatus = stat()
        try sys("stat(image)", stat(volume.image, &imageStatus))
        XCTAssertEqual(imageStatus.st_mode & 0o777, 0o600, "the image's mode after mkfs")
        try volume.mountForOtherUsers()
        // Root's file, written and fsynced before the flood.
        let bystander = volume.path("bystander")
        let bystanderData = TestContent.bytes(seed: 7, count: 300_000)
        try createFile(bystander, contents: bystanderData)
        let fd = try openFile(bystander, O_RDONLY)
        try sys("fsync(bystander)", fsync(fd))
        close(fd)
        let home = volume.path("home")
        try makeDirectory(home, mode: 0o755)
        try sys("chown(home)", chown(home, TestUser.uid, TestUser.gid))

        var user = TestUser.plain
        var outcome = extentfs_xattr_flood_outcome()
        let started = home.withCString { extentfs_test_xattr_flood_as_user(&user, $0, 5000, &outcome) }
        XCTAssertEqual(started, 0, "the child did not report: \(errnoName(-started))")
        XCTAssertEqual(outcome.failed_step, 0, "setup step \(outcome.failed_step): \(errnoName(outcome.setup_error))")
        XCTAssertEqual(outcome.long_name_error, ERANGE, "a 256-byte name: \(errnoName(outcome.long_name_error))")
        XCTAssertEqual(outcome.oversized_value_error, E2BIG, "a value over 64 KiB: \(errnoName(outcome.oversized_value_error))")
        XCTAssertEqual(outcome.second_value_error, ENOSPC, "a second 64 KiB value on one file: \(errnoName(outcome.second_value_error))")
        XCTAssertEqual(outcome.flood_error, ENOSPC, "the flood stopped with \(errnoName(outcome.flood_error)) at step \(outcome.flood_step)")
        XCTAssertGreaterThan(outcome.files, 100, "values that fitted")
        XCTAssertLessThan(outcome.files, 400, "64 MiB cannot hold three checkpoints of more")

        var fs = statvfs()
        try sys("statvfs", statvfs(volume.mountPoint, &fs))
        XCTAssertLessThan(UInt64(fs.f_bavail) * UInt64(fs.f_frsize), 2 << 20, "df shows the xattrs' space as used")

        // The commit at unmount has room: umount succeeds, fsck is clean, everything is there.
        try volume.remountChecked("after the flood")
        XCTAssertEqual(try readWholeFile(bystander).prefix(bystanderData.count + 1), bystanderData[...])
        for index in [0, Int(outcome.files) - 1] {
            XCTAssertEqual(try getXattr(home + "/f\(index)", "user.v").count, 65536, "f\(index) after the remount")
        }
        try volume.unmount()
    }

    /// The kernel checks getxattr and setxattr of trusted.* itself, but passes listxattr to the
    /// daemon unfiltered: the daemon leaves trusted.* names out for a caller without
    /// CAP_SYS_ADMIN, as ext4 and XFS do (seen failing before: the user listed
    /// trusted.overlay.opaque).
    func testTrustedNamesAreListedOnlyToAnAdministrator() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: MountHarness.blockSizes.last ?? 4096, imageSize: "64M")
        try volume.mountForOtherUsers()
        let file = volume.path("file")
        try createFile(file, contents: [1, 2, 3], mode: 0o644)
        try setXattr(file, "user.visible", [1])
        try setXattr(file, "trusted.overlay.opaque", [0x79])
        XCTAssertEqual(try listXattrs(file), ["trusted.overlay.opaque", "user.visible"], "as root")

        var user = TestUser.plain
        var result = extentfs_listxattr_result()
        let started = file.withCString { extentfs_test_listxattr_as_user(&user, $0, &result) }
        XCTAssertEqual(started, 0, "the child did not report: \(errnoName(-started))")
        XCTAssertEqual(result.failed_step, 0, "setup step \(result.failed_step): \(errnoName(result.setup_error))")
        XCTAssertGreaterThanOrEqual(result.result, 0, "llistxattr as the user: \(errnoName(-result.result))")
        let listed = withUnsafeBytes(of: result.names) { bytes in
            bytes.prefix(Int(max(0, result.result))).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(listed, ["user.visible"], "as an unprivileged user")
        try volume.unmount()
    }
}
