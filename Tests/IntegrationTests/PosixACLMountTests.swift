import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// POSIX ACLs through a real mount, with the real getfacl and setfacl (Debian's acl package) and
/// an unprivileged user: the kernel enforces them (FUSE_POSIX_ACL), the daemon keeps them and the
/// mode consistent and applies default ACLs and the umask (FUSE_DONT_MASK). Before ACLs, setfacl
/// failed with "Operation not supported".
final class PosixACLMountTests: XCTestCase {
    private let setfacl = "/usr/bin/setfacl"
    private let getfacl = "/usr/bin/getfacl"
    private let user = TestUser.uid

    private func acl(_ path: String) throws -> [String] {
        try runChecked(getfacl, ["-n", "-p", "-c", path]).split(separator: "\n").map(String.init)
    }

    private func userCanRead(_ path: String) throws -> Bool {
        try runAsTestUser("cat '\(path)' >/dev/null").succeeded
    }

    private func mode(_ path: String) throws -> mode_t {
        try fileStatus(path).st_mode & 0o7777
    }

    func testNamedEntriesTheMaskAndDefaultACLsAreEnforcedAndKept() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: MountHarness.blockSizes.last ?? 4096, imageSize: "64M")
        try volume.mountForOtherUsers()

        // A named-user entry grants what the mode does not; the mask limits it.
        let secret = volume.path("secret")
        try createFile(secret, contents: Array("secret\n".utf8), mode: 0o640)
        try sys("chmod(secret)", chmod(secret, 0o640))
        XCTAssertFalse(try userCanRead(secret), "the mode alone lets the user read")
        try runChecked(setfacl, ["-m", "u:\(user):r", secret])
        XCTAssertEqual(try mode(secret), 0o640, "the mask (r) is the mode's group bits")
        let secretACL = try acl(secret)
        XCTAssertTrue(secretACL.contains("user:\(user):r--"), "\(secretACL)")
        XCTAssertTrue(try userCanRead(secret), "the named-user entry does not grant read")
        try sys("chmod(secret)", chmod(secret, 0o600))
        let chmoddedACL = try acl(secret)
        XCTAssertTrue(chmoddedACL.contains("mask::---"), "chmod did not update the mask: \(chmoddedACL)")
        XCTAssertFalse(try userCanRead(secret), "the mask does not limit the named user")
        try sys("chmod(secret)", chmod(secret, 0o640))
        XCTAssertTrue(try userCanRead(secret))

        // A named-user entry denies what the mode gives everyone else.
        let open = volume.path("open")
        try createFile(open, contents: Array("open\n".utf8), mode: 0o644)
        XCTAssertTrue(try userCanRead(open))
        try runChecked(setfacl, ["-m", "u:\(user):-", open])
        XCTAssertFalse(try userCanRead(open), "the named-user entry does not deny read")
        // An ACL equal to a mode is kept as the mode: no ACL left, and the entry's denial gone.
        try runChecked(setfacl, ["-b", open])
        XCTAssertEqual(try listXattrs(open), [])
        XCTAssertTrue(try userCanRead(open))

        // Setting an ACL takes set-group-ID from a file whose group the setter is not in
        // (posix_acl_update_mode): the kernel leaves that to the daemon, which reads the
        // setter's CAP_FSETID itself.
        let program = volume.path("program")
        try createFile(program, contents: Array("#!/bin/sh\n".utf8))
        try sys("chown(program)", chown(program, TestUser.uid, TestUser.group))
        try sys("chmod(program)", chmod(program, 0o2770))
        let outsider = try runAsTestUser("setfacl -m u:4321:r '\(program)'")
        XCTAssertTrue(outsider.succeeded, "\(outsider)")
        XCTAssertEqual(try mode(program), 0o770, "set-group-ID kept for a setter outside the group")
        try sys("chmod(program)", chmod(program, 0o2770))
        let member = try runAsTestUser("setfacl -m u:4322:r '\(program)'", groups: [TestUser.group])
        XCTAssertTrue(member.succeeded, "\(member)")
        XCTAssertEqual(try mode(program), 0o2770, "set-group-ID taken from a member of the group")
        try runChecked(setfacl, ["-m", "u:4323:r", program])
        XCTAssertEqual(try mode(program), 0o2770, "set-group-ID taken from root (CAP_FSETID)")

        // Without a default ACL the user's umask applies, as on any filesystem.
        let home = volume.path("home")
        try makeDirectory(home, mode: 0o755)
        try sys("chown(home)", chown(home, TestUser.uid, TestUser.gid))
        let masked = try runAsTestUser("umask 027 && touch '\(home)/f' && mkdir '\(home)/d'")
        XCTAssertTrue(masked.succeeded, "\(masked)")
        XCTAssertEqual(try mode(home + "/f"), 0o640)
        XCTAssertEqual(try mode(home + "/d"), 0o750)

        // A default ACL: inherited by files and subdirectories, the create mode limiting it and
        // the umask not applying.
        let shared = volume.path("shared")
        try makeDirectory(shared, mode: 0o755)
        try runChecked(setfacl, ["-m", "u:\(user):rwx,d:u:\(user):rwx,d:g::r-x,d:o::---", shared])
        let created = try runAsTestUser("umask 022 && touch '\(shared)/f' && mkdir '\(shared)/sub' && touch '\(shared)/sub/g'")
        XCTAssertTrue(created.succeeded, "\(created)")
        // touch creates with 0666: owner rw-, mask rwx & rw- = rw-, other --- from the default.
        XCTAssertEqual(try mode(shared + "/f"), 0o660)
        let fileACL = try acl(shared + "/f")
        XCTAssertTrue(fileACL.contains("user:\(user):rwx\t#effective:rw-"), "\(fileACL)")
        XCTAssertTrue(fileACL.contains("mask::rw-"), "\(fileACL)")
        XCTAssertFalse(fileACL.contains { $0.hasPrefix("default:") }, "a file got a default ACL: \(fileACL)")
        XCTAssertEqual(try mode(shared + "/sub"), 0o770)
        let subdirectoryACL = try acl(shared + "/sub")
        XCTAssertEqual(subdirectoryACL.filter { $0.hasPrefix("default:") }, try acl(shared).filter { $0.hasPrefix("default:") })
        XCTAssertEqual(try mode(shared + "/sub/g"), 0o660, "the default ACL inherited by the subdirectory")
        // chmod of an inherited ACL's file moves its mask.
        try sys("chmod(f)", chmod(shared + "/f", 0o640))
        XCTAssertTrue(try acl(shared + "/f").contains("mask::r--"))

        // Everything fsynced survives a crash: a copy of the image taken while mounted (the
        // ACLs only in the log, no checkpoint since mount) replays them.
        let paths = [secret, open, shared, shared + "/f", shared + "/sub", shared + "/sub/g"]
        let before = try paths.map { try acl($0) }
        for path in paths {
            let fd = try openFile(path, O_RDONLY)
            try sys("fsync(\(path))", fsync(fd))
            close(fd)
        }
        let crashed = try harness.makeScratchVolume(name: "crash-copy", blockSize: volume.blockSize)
        try FileManager.default.copyItem(atPath: volume.image, toPath: crashed.image)
        try crashed.requireClean("the crash copy")
        try crashed.mountForOtherUsers()
        let crashedPaths = paths.map { crashed.mountPoint + $0.dropFirst(volume.mountPoint.count) }
        XCTAssertEqual(try crashedPaths.map { try acl($0) }, before, "after a crash")
        XCTAssertTrue(try userCanRead(crashed.path("secret")))
        try crashed.unmount()
        try crashed.requireClean("the crash copy after mounting it")

        // Everything survives unmount, fsck and mount.
        try volume.unmount()
        try volume.requireClean("after setting ACLs")
        try volume.mountForOtherUsers()
        XCTAssertEqual(try paths.map { try acl($0) }, before)
        XCTAssertTrue(try userCanRead(secret))
        XCTAssertTrue(try userCanRead(shared + "/f"))
        try volume.unmount()
        try volume.requireClean("at the end")
    }
}
