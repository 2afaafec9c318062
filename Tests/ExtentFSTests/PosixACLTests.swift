import ExtentFSCore
import XCTest
import SystemPackage
@testable import ExtentFS

/// POSIX ACLs in the engine (FileSystem+ACL.swift): validation, the mode kept consistent with
/// the access ACL both ways, inheritance of default ACLs with the create mode and the umask,
/// the read check the adapter asks for, and the ACLs across a remount and a crash.
final class PosixACLTests: XCTestCase {
    private let access = AccessControlList.accessXattrName
    private let `default` = AccessControlList.defaultXattrName
    private let user = Credentials(uid: 1000, gid: 1000, umask: 0o022)

    /// An ACL xattr value: version 2, then (tag, permissions, id) entries as given.
    private func acl(_ entries: [(UInt16, UInt16, UInt32)], version: UInt32 = 2) -> [UInt8] {
        var bytes = withUnsafeBytes(of: version.littleEndian, Array.init)
        for (tag, permissions, id) in entries {
            bytes += withUnsafeBytes(of: tag.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: permissions.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: id.littleEndian, Array.init)
        }
        return bytes
    }

    private let owner: UInt16 = 0x01, namedUser: UInt16 = 0x02, group: UInt16 = 0x04
    private let namedGroup: UInt16 = 0x08, mask: UInt16 = 0x10, other: UInt16 = 0x20
    private let none = UInt32.max

    private func mode(_ volume: TestVolume, _ ino: InodeNumber) throws -> UInt32 {
        try volume.fs.getattr(ino).mode & 0o7777
    }

    func testMalformedACLsAreRefusedWithEINVAL() throws {
        let volume = try TestVolume()
        let file = try volume.create("file")
        let base: [(UInt16, UInt16, UInt32)] = [(owner, 6, none), (group, 4, none), (other, 4, none)]
        let malformed: [(String, [UInt8])] = [
            ("version 1", acl(base, version: 1)),
            ("header only", acl([])),
            ("a torn entry", Array(acl(base).dropLast(3))),
            ("an unknown tag", acl([(owner, 6, none), (0x40, 4, none), (group, 4, none), (other, 4, none)])),
            ("permissions past rwx", acl([(owner, 0o10, none), (group, 4, none), (other, 4, none)])),
            ("no other entry", acl([(owner, 6, none), (group, 4, none)])),
            ("no owner entry", acl([(group, 4, none), (other, 4, none)])),
            ("two owner entries", acl([(owner, 6, none), (owner, 6, none), (group, 4, none), (other, 4, none)])),
            ("out of order", acl([(group, 4, none), (owner, 6, none), (other, 4, none)])),
            ("a named user without a mask", acl([(owner, 6, none), (namedUser, 4, 7), (group, 4, none), (other, 4, none)])),
            ("named users unsorted", acl([(owner, 6, none), (namedUser, 4, 9), (namedUser, 4, 7), (group, 4, none),
                                          (mask, 4, none), (other, 4, none)])),
            ("a named group twice", acl([(owner, 6, none), (group, 4, none), (namedGroup, 4, 7), (namedGroup, 6, 7),
                                         (mask, 6, none), (other, 4, none)])),
            ("two masks", acl([(owner, 6, none), (group, 4, none), (mask, 4, none), (mask, 4, none), (other, 4, none)])),
        ]
        for (what, value) in malformed {
            XCTAssertEqual(errno { try volume.fs.setxattr(file, name: self.access, value: value, flags: []) }, .invalidArgument, what)
        }
        let tooLarge = acl([(owner, 6, none), (group, 4, none)] + (1...520).map { (namedGroup, 4, UInt32($0)) } +
                           [(mask, 4, none), (other, 4, none)])
        XCTAssertEqual(errno { try volume.fs.setxattr(file, name: self.access, value: tooLarge, flags: []) }, .argListTooLong)
        // Only a directory has a default ACL (set_posix_acl's EACCES); other system.* names are not kept.
        XCTAssertEqual(errno { try volume.fs.setxattr(file, name: self.default, value: self.acl(base), flags: []) }, .permissionDenied)
        XCTAssertEqual(errno { try volume.fs.setxattr(file, name: Array("system.other".utf8), value: [1], flags: []) }, .notSupported)
        let link = try volume.fs.symlink(parent: FileSystem.rootInode, name: Array("link".utf8), target: Array("file".utf8), owner: .root).ino
        XCTAssertEqual(errno { try volume.fs.setxattr(link, name: self.access, value: self.acl(base), flags: []) }, .notSupported)
        XCTAssertEqual(try mode(volume, file), 0o644, "a refused ACL changed the mode")
        XCTAssertEqual(try volume.fs.listxattr(file), [])
        try volume.unmountAndCheck()
    }

    func testAnAccessACLSetsTheModeAndChmodSetsItsMask() throws {
        let volume = try TestVolume()
        let file = try volume.create("file", mode: 0o644)
        let value = acl([(owner, 7, none), (namedUser, 6, 1001), (group, 4, none), (mask, 6, none), (other, 0, none)])
        try volume.fs.setxattr(file, name: access, value: value, flags: [])
        // The group bits of the mode are the mask's.
        XCTAssertEqual(try mode(volume, file), 0o760)
        XCTAssertEqual(try volume.fs.getxattr(file, name: access), value)
        XCTAssertEqual(try volume.fs.listxattr(file), [access])

        _ = try volume.fs.setattr(file, AttributeChanges(mode: 0o640))
        let chmodded = try AccessControlList(xattrValue: try volume.fs.getxattr(file, name: access))
        XCTAssertEqual(chmodded.entries.map(\.permissions), [6, 6, 4, 4, 0], "owner, named user, group, mask, other")

        // An ACL the mode says all of is kept as the mode alone.
        try volume.fs.setxattr(file, name: access, value: acl([(owner, 6, none), (group, 0, none), (other, 4, none)]), flags: [])
        XCTAssertEqual(try mode(volume, file), 0o604)
        XCTAssertEqual(errno { _ = try volume.fs.getxattr(file, name: self.access) }, .noData)
        try volume.unmountAndCheck()
    }

    func testSettingAnACLClearsSetGroupIDForACallerOutsideTheGroup() throws {
        let volume = try TestVolume()
        let file = try volume.create("file", mode: 0o2775)
        let value = acl([(owner, 7, none), (namedUser, 7, 1001), (group, 5, none), (mask, 7, none), (other, 5, none)])
        let outsider = Credentials(uid: 0o4242, gid: 0o4242, keepsSetIDBits: false)
        try volume.fs.setxattr(file, name: access, value: value, flags: [], changedBy: outsider)
        XCTAssertEqual(try mode(volume, file), 0o775)
        _ = try volume.fs.setattr(file, AttributeChanges(mode: 0o2775))
        let member = Credentials(uid: 0o4242, gid: 0, keepsSetIDBits: false)
        try volume.fs.setxattr(file, name: access, value: value, flags: [], changedBy: member)
        XCTAssertEqual(try mode(volume, file), 0o2775)
        try volume.unmountAndCheck()
    }

    func testReadAccessFollowsNamedEntriesAndTheMask() throws {
        let volume = try TestVolume()
        let file = try volume.create("file", mode: 0o640)
        let named = Credentials(uid: 1001, gid: 2001)
        let stranger = Credentials(uid: 1002, gid: 2002)
        let groupMember = Credentials(uid: 1003, gid: 0)
        XCTAssertFalse(try volume.fs.mayRead(file, by: named))
        XCTAssertTrue(try volume.fs.mayRead(file, by: groupMember))
        // A named user granted read, a named group denied it though others may read.
        try volume.fs.setxattr(file, name: access, value: acl([(owner, 6, none), (namedUser, 4, 1001), (group, 4, none),
                                                              (namedGroup, 0, 2002), (mask, 4, none), (other, 4, none)]), flags: [])
        XCTAssertTrue(try volume.fs.mayRead(file, by: named))
        XCTAssertFalse(try volume.fs.mayRead(file, by: stranger), "a matching group entry shuts out other")
        XCTAssertTrue(try volume.fs.mayRead(file, by: Credentials(uid: 1004, gid: 2004)))
        // The mask bounds the named user: chmod g-r takes read away from it.
        _ = try volume.fs.setattr(file, AttributeChanges(mode: 0o604))
        XCTAssertFalse(try volume.fs.mayRead(file, by: named))
        XCTAssertFalse(try volume.fs.mayRead(file, by: groupMember))
        XCTAssertTrue(try volume.fs.mayRead(file, by: .root))
        try volume.unmountAndCheck()
    }

    func testDefaultACLsAreInheritedInsteadOfTheUmask() throws {
        let volume = try TestVolume()
        let root = FileSystem.rootInode
        // No default ACL: the umask applies (FUSE_DONT_MASK leaves it to the engine).
        let plain = try volume.fs.create(parent: root, name: Array("plain".utf8), mode: 0o666, flags: 0, owner: user)
        XCTAssertEqual(plain.mode & 0o7777, 0o644)
        let shared = try volume.fs.mkdir(parent: root, name: Array("shared".utf8), mode: 0o777, owner: user).ino
        XCTAssertEqual(try mode(volume, shared), 0o755)

        let defaultACL = acl([(owner, 7, none), (namedUser, 7, 1001), (group, 5, none), (mask, 7, none), (other, 0, none)])
        try volume.fs.setxattr(shared, name: `default`, value: defaultACL, flags: [])
        // A file: the default ACL limited by the create mode 0640 (the mask takes the group
        // bits), and not by the umask 022.
        let file = try volume.fs.create(parent: shared, name: Array("file".utf8), mode: 0o640, flags: 0, owner: user).ino
        XCTAssertEqual(try mode(volume, file), 0o640)
        let fileACL = try AccessControlList(xattrValue: try volume.fs.getxattr(file, name: access))
        XCTAssertEqual(fileACL.entries.map(\.permissions), [6, 7, 5, 4, 0], "owner, named user, group, mask, other")
        XCTAssertEqual(errno { _ = try volume.fs.getxattr(file, name: self.default) }, .noData)
        // Mode 0666 with the umask 022 would be 0644; the default ACL makes it 0660 (other 0).
        let open = try volume.fs.create(parent: shared, name: Array("open".utf8), mode: 0o666, flags: 0, owner: user).ino
        XCTAssertEqual(try mode(volume, open), 0o660)
        // A subdirectory inherits the default ACL itself, and an access ACL from it.
        let subdirectory = try volume.fs.mkdir(parent: shared, name: Array("sub".utf8), mode: 0o755, owner: user).ino
        XCTAssertEqual(try mode(volume, subdirectory), 0o750)
        XCTAssertEqual(try volume.fs.getxattr(subdirectory, name: `default`), defaultACL)
        let subdirectoryACL = try AccessControlList(xattrValue: try volume.fs.getxattr(subdirectory, name: access))
        XCTAssertEqual(subdirectoryACL.entries.map(\.permissions), [7, 7, 5, 5, 0])
        // A device node takes it as a file does; a symlink takes nothing.
        let node = try volume.fs.mknod(parent: subdirectory, name: Array("fifo".utf8), mode: ExtentFSCore.FileType.fifo.rawValue | 0o600,
                                       rdev: 0, owner: user).ino
        XCTAssertEqual(try mode(volume, node), 0o600)
        let link = try volume.fs.symlink(parent: shared, name: Array("link".utf8), target: Array("file".utf8), owner: user).ino
        XCTAssertEqual(try mode(volume, link), 0o777)
        XCTAssertEqual(try volume.fs.listxattr(link), [])
        // A default ACL equivalent to a mode still replaces the umask.
        try volume.fs.setxattr(subdirectory, name: `default`, value: acl([(owner, 7, none), (group, 7, none), (other, 7, none)]), flags: [])
        let wide = try volume.fs.create(parent: subdirectory, name: Array("wide".utf8), mode: 0o666, flags: 0, owner: user).ino
        XCTAssertEqual(try mode(volume, wide), 0o666)
        XCTAssertEqual(try volume.fs.listxattr(wide), [])
        try volume.unmountAndCheck()
    }

    func testACLsSurviveARemountAndACrash() throws {
        let volume = try TestVolume()
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: user).ino
        let defaultACL = acl([(owner, 7, none), (group, 5, none), (namedGroup, 7, 3000), (mask, 7, none), (other, 5, none)])
        try volume.fs.setxattr(directory, name: `default`, value: defaultACL, flags: [])
        let file = try volume.fs.create(parent: directory, name: Array("f".utf8), mode: 0o644, flags: 0, owner: user).ino
        let fileACL = try volume.fs.getxattr(file, name: access)
        try volume.remount()
        XCTAssertEqual(try volume.fs.getxattr(directory, name: `default`), defaultACL)
        XCTAssertEqual(try volume.fs.getxattr(file, name: access), fileACL)
        XCTAssertEqual(try mode(volume, file), 0o644)

        // Changed after the remount and logged by fsync (no checkpoint): the crash copy replays it.
        _ = try volume.fs.setattr(file, AttributeChanges(mode: 0o600))
        try volume.fs.fsync(file, dataOnly: false)
        try volume.withCrashedCopy { crashed in
            XCTAssertEqual(try crashed.getattr(file).mode & 0o777, 0o600)
            let replayed = try AccessControlList(xattrValue: try crashed.getxattr(file, name: self.access))
            XCTAssertEqual(replayed.entries.map(\.permissions), [6, 5, 7, 0, 0], "owner, group, named group, mask, other")
            XCTAssertEqual(try crashed.getxattr(directory, name: self.default), defaultACL)
        }
        try volume.unmountAndCheck()
    }
}
