import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// chattr flags and the label through a real mount, with the tools users have: e2fsprogs'
/// chattr and lsattr (FS_IOC_GETFLAGS/SETFLAGS), xfs_io's chattr, lsattr and label
/// (FS_IOC_FSGETXATTR/FSSETXATTR, FS_IOC_GETFSLABEL/SETFSLABEL). The kernel does not know a FUSE
/// file's flags (it enforces S_IMMUTABLE and S_APPEND only from its own inode flags, which FUSE
/// never sets): every EPERM below comes from the daemon.
final class ChattrLabelTests: XCTestCase {
    private var blockSize: Int { MountHarness.blockSizes.last ?? 4096 }

    private func run(_ tool: String, _ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(tool, arguments, timeout: 60)
    }

    /// The flag letters lsattr prints for `path` (its first column).
    private func lsattr(_ path: String, directory: Bool = false) throws -> String {
        let result = try run("/usr/bin/lsattr", (directory ? ["-d"] : []) + [path])
        guard result.succeeded else { throw HarnessError("lsattr \(path): \(result)") }
        return String(result.stdout.split(separator: " ").first ?? "")
    }

    private func chattr(_ change: String, _ path: String) throws {
        let result = try run("/usr/bin/chattr", [change, path])
        guard result.succeeded else { throw HarnessError("chattr \(change) \(path): \(result)") }
    }

    /// An xfs_io command on a descriptor opened with `open` flags ("-r" read-only, "-a" append);
    /// what it printed to stderr (xfs_io exits 0 after a failed command).
    private func xfsIO(_ open: [String], _ command: String, _ path: String, preload: String? = nil) throws -> ProcessResult {
        try run("/usr/bin/env", (preload.map { ["LD_PRELOAD=\($0)"] } ?? []) + ["/usr/sbin/xfs_io"] + open + ["-c", command, path])
    }

    func testImmutableAndAppendOnlyAreEnforcedThroughTheMount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
        try volume.mount()
        let frozen = volume.path("frozen")
        let data = TestContent.bytes(seed: 3, count: 3 * blockSize)
        try createFile(frozen, contents: data)
        try setXattr(frozen, "user.kept", [1])
        let other = volume.path("other")
        try createFile(other, contents: [1, 2, 3])

        try chattr("+i", frozen)
        XCTAssertEqual(try lsattr(frozen).filter { $0 != "-" }, "i")
        XCTAssertErrno(EPERM, "open for writing") { open(frozen, O_WRONLY | O_CLOEXEC) }
        XCTAssertErrno(EPERM, "open to append") { open(frozen, O_WRONLY | O_APPEND | O_CLOEXEC) }
        XCTAssertErrno(EPERM, "truncate") { truncate(frozen, 0) }
        XCTAssertErrno(EPERM, "chmod") { chmod(frozen, 0o600) }
        XCTAssertErrno(EPERM, "chown") { chown(frozen, 1, 1) }
        XCTAssertErrno(EPERM, "utimes to now") { utimensat(AT_FDCWD, frozen, nil, 0) }
        XCTAssertErrno(EPERM, "setxattr") { Linux.lsetxattr(frozen, "user.new", [2], 1, 0) }
        XCTAssertErrno(EPERM, "removexattr") { Linux.lremovexattr(frozen, "user.kept") }
        XCTAssertErrno(EPERM, "link") { link(frozen, volume.path("again")) }
        XCTAssertErrno(EPERM, "unlink") { unlink(frozen) }
        XCTAssertErrno(EPERM, "rename") { rename(frozen, volume.path("moved")) }
        XCTAssertErrno(EPERM, "rename over it") { rename(other, frozen) }
        XCTAssertEqual(try readWholeFile(frozen), data, "an immutable file reads")
        // xfs_io's view (FS_IOC_FSGETXATTR), and its own chattr (FS_IOC_FSSETXATTR).
        let xfsFlags = try xfsIO(["-r"], "lsattr", frozen)
        XCTAssertEqual(xfsFlags.stdout.split(separator: " ").first?.filter { $0 != "-" }, "i", "xfs_io lsattr: \(xfsFlags)")
        XCTAssertTrue(try xfsIO(["-r"], "chattr -i", frozen).stderr.isEmpty)
        XCTAssertEqual(try lsattr(frozen).filter { $0 != "-" }, "", "cleared by xfs_io")
        XCTAssertTrue(try xfsIO(["-r"], "chattr +i", frozen).stderr.isEmpty)
        XCTAssertEqual(try lsattr(frozen).filter { $0 != "-" }, "i", "set by xfs_io")
        XCTAssertTrue(try xfsIO(["-r"], "chattr -i", frozen).stderr.isEmpty)

        // Append-only: open only to append; data only at the end; no hole, shift or removal.
        let log = volume.path("log")
        try createFile(log, contents: data)
        try chattr("+a", log)
        XCTAssertEqual(try lsattr(log).filter { $0 != "-" }, "a")
        XCTAssertErrno(EPERM, "open for writing without O_APPEND") { open(log, O_WRONLY | O_CLOEXEC) }
        XCTAssertErrno(EPERM, "open to append and truncate") { open(log, O_WRONLY | O_APPEND | O_TRUNC | O_CLOEXEC) }
        let appending = try openFile(log, O_WRONLY | O_APPEND)
        XCTAssertEqual(write(appending, [7, 7, 7], 3), 3, "a write at the end")
        try closeFile(appending)
        XCTAssertEqual(try fileStatus(log).st_size, off_t(data.count + 3))
        XCTAssertErrno(EPERM, "truncate") { truncate(log, 0) }
        XCTAssertErrno(EPERM, "chmod") { chmod(log, 0o600) }
        XCTAssertErrno(EPERM, "setxattr") { Linux.lsetxattr(log, "user.new", [2], 1, 0) }
        XCTAssertErrno(EPERM, "unlink") { unlink(log) }
        XCTAssertErrno(EPERM, "rename") { rename(log, volume.path("moved")) }
        XCTAssertErrno(EPERM, "link") { link(log, volume.path("again")) }
        // Collapse and insert reach the daemon through the preload library's ioctls (the kernel
        // refuses them for FUSE itself), punch and zero as fallocate.
        let preload = URL(fileURLWithPath: harness.binary).deletingLastPathComponent().appendingPathComponent("libExtentFSPreload.so").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: preload), "the preload library is not at \(preload)")
        for command in ["fpunch 0 \(blockSize)", "fzero 0 \(blockSize)", "fcollapse 0 \(blockSize)", "finsert 0 \(blockSize)"] {
            let result = try xfsIO(["-a"], command, log, preload: preload)
            XCTAssertTrue(result.stderr.contains("Operation not permitted"), "\(command) on an append-only file: \(result)")
        }
        let preallocated = try xfsIO(["-a"], "falloc -k 0 \(16 * blockSize)", log)
        XCTAssertTrue(preallocated.stderr.isEmpty, "preallocation beyond the end: \(preallocated)")
        XCTAssertEqual(try fileStatus(log).st_size, off_t(data.count + 3), "nothing changed the size")

        // Directories: immutable keeps every entry, append-only takes new ones only.
        let sealed = volume.path("sealed")
        try makeDirectory(sealed)
        try createFile(sealed + "/inside", contents: [1])
        try chattr("+i", sealed)
        XCTAssertEqual(try lsattr(sealed, directory: true).filter { $0 != "-" }, "i")
        XCTAssertErrno(EPERM, "create in it") { open(sealed + "/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644) }
        XCTAssertErrno(EPERM, "mkdir in it") { mkdir(sealed + "/sub", 0o755) }
        XCTAssertErrno(EPERM, "unlink in it") { unlink(sealed + "/inside") }
        XCTAssertErrno(EPERM, "rename out of it") { rename(sealed + "/inside", volume.path("out")) }
        XCTAssertErrno(EPERM, "rename into it") { rename(other, sealed + "/other") }
        let growing = volume.path("growing")
        try makeDirectory(growing)
        try createFile(growing + "/first", contents: [1])
        try chattr("+a", growing)
        try createFile(growing + "/second", contents: [2])
        XCTAssertErrno(EPERM, "unlink in an append-only directory") { unlink(growing + "/first") }

        // Stored only: nodump and noatime; a flag extentfs does not have is refused.
        try chattr("+dA", other)
        XCTAssertEqual(try lsattr(other).filter { $0 != "-" }, "dA")
        let compressed = try run("/usr/bin/chattr", ["+c", other])
        XCTAssertFalse(compressed.succeeded, "chattr +c: \(compressed)")
        XCTAssertTrue(compressed.stderr.contains("Operation not supported"), "\(compressed)")

        // The flags are on disk: after a remount they are there and enforced.
        try volume.remountChecked("after chattr")
        XCTAssertEqual(try lsattr(frozen).filter { $0 != "-" }, "")
        XCTAssertEqual(try lsattr(log).filter { $0 != "-" }, "a")
        XCTAssertEqual(try lsattr(sealed, directory: true).filter { $0 != "-" }, "i")
        XCTAssertEqual(try lsattr(other).filter { $0 != "-" }, "dA")
        XCTAssertErrno(EPERM, "after the remount") { open(log, O_WRONLY | O_CLOEXEC) }
        XCTAssertErrno(EPERM, "after the remount") { unlink(sealed + "/inside") }

        for (change, path) in [("-a", log), ("-i", sealed), ("-a", growing)] { try chattr(change, path) }
        XCTAssertEqual(unlink(log), 0)
        XCTAssertEqual(unlink(sealed + "/inside"), 0)
        try volume.unmount()
        let listing = try harness.extentfs(["fsck", "-v", volume.image])
        XCTAssertTrue(listing.succeeded, "\(listing)")
        XCTAssertTrue(listing.stdout.contains("flags dA born"), "fsck -v lists the flags: \(listing)")
    }

    /// The owner may set nodump, not immutable or append-only (CAP_LINUX_IMMUTABLE); another
    /// user may set nothing on a file not theirs.
    func testAnUnprivilegedUserMayNotSetImmutable() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
        try volume.mountForOtherUsers()
        let owned = volume.path("owned")
        try createFile(owned, contents: [1])
        try sys("chown(owned)", chown(owned, TestUser.uid, TestUser.gid))
        let roots = volume.path("roots")
        try createFile(roots, contents: [1])
        let asUser = ["--reuid=\(TestUser.uid)", "--regid=\(TestUser.gid)", "--clear-groups"]

        for change in ["+i", "+a"] {
            let refused = try run("/usr/bin/setpriv", asUser + ["/usr/bin/chattr", change, owned])
            XCTAssertFalse(refused.succeeded, "chattr \(change) as the owner: \(refused)")
            XCTAssertTrue(refused.stderr.contains("Operation not permitted"), "\(refused)")
        }
        let nodump = try run("/usr/bin/setpriv", asUser + ["/usr/bin/chattr", "+d", owned])
        XCTAssertTrue(nodump.succeeded, "chattr +d as the owner: \(nodump)")
        XCTAssertEqual(try lsattr(owned).filter { $0 != "-" }, "d")
        let notOwner = try run("/usr/bin/setpriv", asUser + ["/usr/bin/chattr", "+d", roots])
        XCTAssertFalse(notOwner.succeeded, "chattr +d on root's file: \(notOwner)")
        XCTAssertEqual(try lsattr(roots).filter { $0 != "-" }, "")
        // Root makes it immutable; its owner cannot undo that.
        try chattr("+i", owned)
        let undo = try run("/usr/bin/setpriv", asUser + ["/usr/bin/chattr", "-i", owned])
        XCTAssertFalse(undo.succeeded, "chattr -i as the owner: \(undo)")
        XCTAssertEqual(try lsattr(owned).filter { $0 != "-" }, "id")
        let label = try run("/usr/bin/setpriv", asUser + ["/usr/sbin/xfs_io", "-r", "-c", "label -s mine", volume.mountPoint])
        XCTAssertTrue(label.stderr.contains("Operation not permitted"), "setting the label as a user: \(label)")
        try chattr("-i", owned)
        try volume.unmount()
    }

    /// mkfs -L sets it; fsck prints it; xfs_io -c label reads and sets it on the mount point
    /// (the kernel passes FS_IOC_GETFSLABEL/SETFSLABEL on to a FUSE daemon); a remount keeps it.
    func testTheLabelFromMkfsThroughXfsIO() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try TestVolume(harness: harness, name: "label", blockSize: blockSize)
        let made = try harness.extentfs(["mkfs", volume.image, "--size", "64M", "-L", "first label"])
        XCTAssertTrue(made.succeeded, "\(made)")
        XCTAssertTrue(try volume.fsck().stdout.contains("label \"first label\""), "fsck prints it")
        try volume.mount()
        defer { volume.cleanUp() }
        let read = try run("/usr/sbin/xfs_io", ["-r", "-c", "label", volume.mountPoint])
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "label = \"first label\"", "\(read)")
        let set = try run("/usr/sbin/xfs_io", ["-r", "-c", "label -s second", volume.mountPoint])
        XCTAssertTrue(set.stderr.isEmpty, "\(set)")
        try volume.remountChecked("after the label changed")
        let reread = try run("/usr/sbin/xfs_io", ["-r", "-c", "label", volume.path("")])
        XCTAssertEqual(reread.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "label = \"second\"", "\(reread)")
        try volume.unmount()
        XCTAssertTrue(try volume.fsck().stdout.contains("label \"second\""))

        let tooLong = try harness.extentfs(["mkfs", volume.directory + "/other.img", "--size", "64M", "-L", String(repeating: "x", count: 256)])
        XCTAssertEqual(tooLong.status, 64, "\(tooLong)")
        XCTAssertTrue(tooLong.stderr.contains("at most 255 bytes"), "\(tooLong)")
    }

    /// The birth time is kept on disk and does not change: statx (through FUSE_STATX, which the
    /// daemon's transport answers) and fsck -v show the same one after changes and remounts.
    func testTheBirthTimeIsStableAcrossRemountsAndShownByStatx() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
        try volume.mount()
        let file = volume.path("born")
        try createFile(file, contents: [1])
        let ino = try fileStatus(file).st_ino
        func birthLine() throws -> String {
            let listing = try harness.extentfs(["fsck", "-v", volume.image])
            guard let line = listing.stdout.split(separator: "\n").first(where: { $0.hasPrefix("inode \(ino) ") }) else {
                throw HarnessError("fsck -v does not list inode \(ino): \(listing)")
            }
            return String(line)
        }
        func statxBirth() throws -> String {
            let result = try run("/usr/bin/stat", ["-c", "%W.%w", file])
            guard result.succeeded else { throw HarnessError("stat: \(result)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let shown = try statxBirth()
        XCTAssertFalse(shown.hasPrefix("0."), "statx has no birth time: \(shown)")
        try volume.unmount()
        let first = try birthLine()
        XCTAssertFalse(first.hasSuffix("born unknown"), first)
        // fsck's seconds.nanoseconds and stat's %W (seconds) agree.
        XCTAssertTrue(first.contains("born \(shown.split(separator: ".").first ?? "")."), "fsck: \(first); stat: \(shown)")
        try volume.mount()
        XCTAssertEqual(try statxBirth(), shown, "after a remount")
        usleep(20_000)
        try createFile(volume.path("later"), contents: [2])
        let fd = try openFile(file, O_WRONLY)
        try writeAll(fd, [3, 4, 5], at: 1)
        try closeFile(fd)
        try sys("chmod", chmod(file, 0o600))
        try volume.remountChecked("after changes")
        XCTAssertEqual(try statxBirth(), shown, "after changes and a remount")
        try volume.unmount()
        XCTAssertEqual(try birthLine(), first)
    }
}
