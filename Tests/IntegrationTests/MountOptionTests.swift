import CExerciseSyscalls
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// The command line mount(8) gives a FUSE filesystem (through mount.fuse3):
/// `extentfs IMAGE DIR -o rw,noatime,...`, with the standard VFS options. It used to exit 64
/// (no such subcommand), and libfuse refused relatime and the other options it has no name for.
final class MountOptionTests: XCTestCase {
    /// What mount.fuse3 runs for `mount -t fuse.extentfs IMAGE DIR -o OPTIONS`.
    private func mountAsHelper(_ volume: TestVolume, _ options: String) throws -> ProcessResult {
        try volume.harness.extentfs([volume.image, volume.mountPoint, "-o", options])
    }

    func testMountHelperFormTakesTheStandardOptions() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")

        let options = "rw,noatime,relatime,nodev,nosuid,noexec,sync,dirsync,lazytime,allow_other"
        let mounted = try mountAsHelper(volume, options)
        XCTAssertTrue(mounted.succeeded, "\(mounted)")
        let entry = try XCTUnwrap(MountTable.entry(at: volume.mountPoint), "not mounted after \(mounted)")
        XCTAssertEqual(entry.fileSystemType, "fuse.extentfs")
        for flag in ["rw", "nodev", "nosuid", "noexec", "noatime"] {
            XCTAssertTrue(entry.mountOptions.contains(flag), "mount flags \(entry.mountOptions) lack \(flag)")
        }
        for option in ["rw", "sync", "dirsync", "allow_other", "default_permissions"] {
            XCTAssertTrue(entry.superOptions.contains(option), "superblock options \(entry.superOptions) lack \(option)")
        }
        try createFile(volume.path("file"), contents: Array("through the helper form".utf8))
        try volume.unmount()

        // An fstab line's options as mount(8) hands them on (defaults dropped, rw first), and the
        // options of mount(8) and other filesystems a user may pass by hand.
        for options in ["rw,dev,suid", "rw,relatime,strictatime,nodiratime,user_xattr,nofail,x-systemd.automount,comment=x"] {
            let result = try mountAsHelper(volume, options)
            XCTAssertTrue(result.succeeded, "-o \(options): \(result)")
            XCTAssertEqual(try readWholeFile(volume.path("file")), Array("through the helper form".utf8))
            try volume.unmount()
        }

        // A mistyped option still fails the mount, in one line.
        let typo = try mountAsHelper(volume, "rw,noatimee")
        XCTAssertFalse(typo.succeeded, "a mount with -o noatimee succeeded")
        XCTAssertFalse(volume.isMounted)
        try volume.requireClean()
    }

    /// `-o ro`: the kernel refuses every change that goes through the VFS; the one that does not,
    /// a dedupe through a read-only descriptor (allowed to the owner), reaches the daemon, whose
    /// engine refuses it. The image is not written. Then remount,rw and remount,ro as mount(8)
    /// runs them (through mount.fuse3): the read-only engine becomes writable once the kernel
    /// lets a change through, and after remount,ro that dedupe is refused again.
    func testReadOnlyMountAndRemount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let content = [UInt8](repeating: 0x5A, count: 3 * 4096)
        try createFile(volume.path("a"), contents: content)
        try createFile(volume.path("b"), contents: content)
        try makeDirectory(volume.path("dir"))
        try setXattr(volume.path("a"), "user.k", Array("v".utf8))
        try volume.unmount()
        let imageBefore = try readWholeFile(volume.image)

        let mounted = try mountAsHelper(volume, "ro,dev,suid")
        XCTAssertTrue(mounted.succeeded, "\(mounted)")
        assertEveryChangeRefused(volume)
        XCTAssertEqual(try readWholeFile(volume.path("a")), content)
        XCTAssertEqual(try getXattr(volume.path("a"), "user.k"), Array("v".utf8))
        XCTAssertEqual(dedupeThroughReadOnlyDescriptors(volume), -EROFS, "dedupe on a read-only mount")
        try volume.unmount()
        XCTAssertTrue(try readWholeFile(volume.image) == imageBefore, "a read-only mount changed the image")

        // ro, then remount,rw: the engine follows the kernel.
        XCTAssertTrue(try mountAsHelper(volume, "ro,dev,suid").succeeded)
        try remount(volume, "rw")
        try createFile(volume.path("after-remount-rw"), contents: content)
        XCTAssertEqual(dedupeThroughReadOnlyDescriptors(volume), 0, "dedupe after remount,rw (EXTENTFS_DEDUPE_SAME)")
        // remount,ro of a read-write engine: the kernel stops everything but the dedupe, which
        // the daemon refuses.
        try remount(volume, "ro")
        assertEveryChangeRefused(volume)
        XCTAssertEqual(dedupeThroughReadOnlyDescriptors(volume), -EROFS, "dedupe after remount,ro")
        try remount(volume, "rw")
        try createFile(volume.path("after-second-remount-rw"), contents: content)
        try volume.remountChecked("after remounts")
        XCTAssertEqual(try readWholeFile(volume.path("after-remount-rw")), content)
        XCTAssertEqual(try readWholeFile(volume.path("after-second-remount-rw")), content)
        try volume.unmount()
    }

    /// `-o dirsync`: a create or mkdir is in the image when it returns. A copy of the image taken
    /// right after it (a crash), well within the 5 s between background commits, has it.
    func testDirsyncCommitsDirectoryChangesBeforeReturning() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        XCTAssertTrue(try mountAsHelper(volume, "rw,dirsync").succeeded)
        try makeDirectory(volume.path("dir"))
        try createFile(volume.path("dir/file"), contents: [])
        let crashed = volume.directory + "/crashed.img"
        try FileManager.default.copyItem(atPath: volume.image, toPath: crashed)
        try volume.unmount()

        let check = try harness.extentfs(["fsck", crashed])
        XCTAssertTrue(check.succeeded, "\(check)")
        let mountPoint = volume.directory + "/crashed-mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try harness.extentfs(["mount", crashed, mountPoint, "-o", "ro"])
        XCTAssertTrue(mounted.succeeded, "\(mounted)")
        defer { _ = try? harness.extentfs(["umount", mountPoint]) }
        XCTAssertNoThrow(try fileStatus(mountPoint + "/dir/file"), "the file created under dirsync is not in the crashed image")
    }

    /// `extentfs umount` of one of two places the filesystem is mounted (a bind mount) returns at
    /// once and leaves the other serving: the daemon goes on, so there is no release to wait
    /// for (xfstests generic/306 waited 120 s and then failed). Unmounting the last place waits
    /// for the release as always, and the image checks clean.
    func testUnmountOfABindMountDoesNotWaitForTheDaemon() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        try createFile(volume.path("file"), contents: Array("kept".utf8))
        let bound = volume.directory + "/bound"
        try FileManager.default.createDirectory(atPath: bound, withIntermediateDirectories: true)
        XCTAssertEqual(Glibc.mount(volume.mountPoint, bound, nil, UInt(MS_BIND), nil), 0, "bind mount: \(errno)")
        defer { if MountTable.isMounted(bound) { umount2(bound, Int32(MNT_DETACH)) } }
        let started = Date()
        let unbound = try harness.extentfs(["umount", bound], timeout: 60)
        XCTAssertTrue(unbound.succeeded, "\(unbound)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "umount of the bind mount waited for the daemon")
        XCTAssertFalse(MountTable.isMounted(bound))
        XCTAssertEqual(try readWholeFile(volume.path("file")), Array("kept".utf8), "the other mount still serves")
        try volume.unmount()
        let check = try harness.extentfs(["fsck", volume.image])
        XCTAssertTrue(check.succeeded, "\(check)")
    }

    /// What mount.fuse3 runs for `mount -o remount,FLAG DIR`: the mount's options, merged.
    private func remount(_ volume: TestVolume, _ flag: String) throws {
        let result = try mountAsHelper(volume, "\(flag),nosuid,nodev,remount,user_id=0,group_id=0,default_permissions")
        guard result.succeeded else { throw HarnessError("remount,\(flag): \(result)") }
        let entry = try XCTUnwrap(MountTable.entry(at: volume.mountPoint))
        XCTAssertEqual(entry.superOptions.first, flag, "superblock options after remount,\(flag): \(entry.superOptions)")
    }

    private func assertEveryChangeRefused(_ volume: TestVolume, file: StaticString = #filePath, line: UInt = #line) {
        let a = volume.path("a")
        XCTAssertErrno(EROFS, "create", file: file, line: line) { open(volume.path("new"), O_WRONLY | O_CREAT, 0o644) }
        XCTAssertErrno(EROFS, "open for writing", file: file, line: line) { open(a, O_RDWR) }
        XCTAssertErrno(EROFS, "mkdir", file: file, line: line) { mkdir(volume.path("newdir"), 0o755) }
        XCTAssertErrno(EROFS, "unlink", file: file, line: line) { unlink(a) }
        XCTAssertErrno(EROFS, "rmdir", file: file, line: line) { rmdir(volume.path("dir")) }
        XCTAssertErrno(EROFS, "rename", file: file, line: line) { rename(a, volume.path("renamed")) }
        XCTAssertErrno(EROFS, "link", file: file, line: line) { link(a, volume.path("hard")) }
        XCTAssertErrno(EROFS, "symlink", file: file, line: line) { symlink("a", volume.path("sym")) }
        XCTAssertErrno(EROFS, "truncate", file: file, line: line) { truncate(a, 0) }
        XCTAssertErrno(EROFS, "chmod", file: file, line: line) { chmod(a, 0o600) }
        XCTAssertErrno(EROFS, "chown", file: file, line: line) { chown(a, 1, 1) }
        XCTAssertErrno(EROFS, "utimes", file: file, line: line) { utimes(a, nil) }
        XCTAssertErrno(EROFS, "setxattr", file: file, line: line) {
            Linux.lsetxattr(a, "user.x", "y", 1, 0)
        }
        XCTAssertErrno(EROFS, "removexattr", file: file, line: line) { Linux.lremovexattr(a, "user.k") }
    }

    /// The status of an extentfs dedupe of a's first block into b's, both opened read-only (what
    /// the owner may do, as with FIDEDUPERANGE), or -errno of the ioctl itself.
    private func dedupeThroughReadOnlyDescriptors(_ volume: TestVolume) -> Int32 {
        let source = open(volume.path("a"), O_RDONLY)
        let destination = open(volume.path("b"), O_RDONLY)
        defer {
            close(source)
            close(destination)
        }
        guard source >= 0, destination >= 0 else { return -errno }
        var status: Int32 = 0
        var deduped: UInt64 = 0
        let result = exercise_dedupe_range(destination, source, 0, 4096, 0, &status, &deduped)
        return result < 0 ? result : status
    }
}
