import ExtentFSCore
import XCTest
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif
@testable import ExtentFS

/// chattr flags as ext4 and XFS keep them (immutable, append-only enforced by the engine;
/// nodump and noatime stored), the birth time, and the label: stored across remounts, refused
/// where the VFS refuses, and the format version 6 they need (older images convert; hostile
/// values are refused).
final class InodeFlagsTests: XCTestCase {
    private let user = Credentials(uid: 1000, gid: 1000)
    private let otherUser = Credentials(uid: 1001, gid: 1001)

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A file of two blocks of data, owned by `owner`.
    private func file(_ volume: TestVolume, _ name: String, owner: Credentials = .root) throws -> InodeNumber {
        let ino = try volume.fs.create(parent: FileSystem.rootInode, name: bytes(name), mode: 0o644, flags: 0, owner: owner).ino
        volume.fs.release(ino)
        try volume.write(ino, pattern(2 * volume.blockSize, seed: 5), at: 0)
        return ino
    }

    func testFlagsAreStoredAndSurviveARemount() throws {
        let volume = try TestVolume()
        let plain = try file(volume, "plain")
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: bytes("d"), mode: 0o755, owner: .root).ino
        XCTAssertEqual(try volume.fs.flags(plain), [])
        let ctime = try volume.fs.getattr(plain).ctime
        try volume.fs.setFlags(plain, [.immutable, .noDump], by: .root)
        try volume.fs.setFlags(directory, [.appendOnly, .noAccessTime], by: .root)
        XCTAssertNotEqual(try volume.fs.getattr(plain).ctime, ctime, "a flag change is a change of the inode")
        try volume.remount()
        XCTAssertEqual(try volume.fs.flags(plain), [.immutable, .noDump])
        XCTAssertEqual(try volume.fs.flags(directory), [.appendOnly, .noAccessTime])
        XCTAssertEqual(errno { _ = try volume.write(plain, [1], at: 0) }, .notPermitted, "immutable after the remount")
        try volume.fs.setFlags(plain, [], by: .root)
        try volume.fs.setFlags(directory, [], by: .root)
        try volume.unmountAndCheck()
    }

    /// EOPNOTSUPP for any flag extentfs does not have, as ext4 and XFS answer (FS_SYNC_FL,
    /// FS_COMPR_FL, and a bit no one has).
    func testUnknownFlagsAreRefused() throws {
        let volume = try TestVolume()
        let plain = try file(volume, "plain")
        for raw: UInt32 in [0x8, 0x4, 0x4000_0000, 0x10 | 0x100] {
            XCTAssertEqual(errno { try volume.fs.setFlags(plain, InodeFlags(rawValue: raw), by: .root) }, .notSupported, "flags 0x\(String(raw, radix: 16))")
        }
        XCTAssertEqual(try volume.fs.flags(plain), [], "a refused change changes nothing")
        XCTAssertNil(InodeFlags(extendedFlags: 0x1), "FS_XFLAG_REALTIME has no flag here")
        XCTAssertEqual(InodeFlags(extendedFlags: 0x8 | 0x10 | 0x40 | 0x80), .known)
        XCTAssertEqual(InodeFlags.known.extendedFlags, 0x8 | 0x10 | 0x40 | 0x80)
        try volume.unmountAndCheck()
    }

    /// The owner (or CAP_FOWNER) changes nodump and noatime; immutable and append-only take
    /// CAP_LINUX_IMMUTABLE, whoever owns the file; an immutable file's other flags stay.
    func testWhoMayChangeWhichFlags() throws {
        let volume = try TestVolume()
        let owned = try file(volume, "owned", owner: user)
        XCTAssertNoThrow(try volume.fs.setFlags(owned, [.noDump], by: user), "the owner sets nodump")
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [.noDump, .immutable], by: self.user) }, .notPermitted,
                       "immutable without CAP_LINUX_IMMUTABLE")
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [.appendOnly], by: self.user) }, .notPermitted,
                       "append-only without CAP_LINUX_IMMUTABLE")
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [], by: self.otherUser) }, .notPermitted, "not the owner")
        var fileOwner = otherUser
        fileOwner.overridesOwnership = true
        XCTAssertNoThrow(try volume.fs.setFlags(owned, [.noAccessTime], by: fileOwner), "CAP_FOWNER")
        var rootWithoutImmutable = Credentials.root
        rootWithoutImmutable.mayChangeImmutableFlags = false
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [.immutable], by: rootWithoutImmutable) }, .notPermitted,
                       "root that dropped CAP_LINUX_IMMUTABLE")
        var owner = user
        owner.mayChangeImmutableFlags = true
        XCTAssertNoThrow(try volume.fs.setFlags(owned, [.immutable], by: owner), "the owner with CAP_LINUX_IMMUTABLE")
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [.immutable, .noDump], by: .root) }, .notPermitted,
                       "another flag of a file that stays immutable")
        XCTAssertEqual(errno { try volume.fs.setFlags(owned, [], by: self.user) }, .notPermitted, "clearing immutable takes the capability too")
        XCTAssertEqual(try volume.fs.flags(owned), [.immutable])
        XCTAssertNoThrow(try volume.fs.setFlags(owned, [], by: .root))
        try volume.unmountAndCheck()
    }

    /// Every change to an immutable file is EPERM, as the VFS refuses it for ext4 and XFS;
    /// reading it is not. Cleared, it changes again.
    func testAnImmutableFileRefusesEveryChange() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let block = UInt64(volume.blockSize)
        let frozen = try file(volume, "frozen")
        let source = try file(volume, "source")
        try fs.setxattr(frozen, name: bytes("user.kept"), value: [1], flags: [])
        let directory = try fs.mkdir(parent: FileSystem.rootInode, name: bytes("d"), mode: 0o755, owner: .root).ino
        try fs.setFlags(frozen, [.immutable], by: .root)

        let refused: [(String, () throws -> Void)] = [
            ("write", { _ = try volume.write(frozen, [1], at: 0) }),
            ("write at the end", { _ = try volume.write(frozen, [1], at: 2 * block) }),
            ("truncate", { _ = try fs.setattr(frozen, AttributeChanges(size: 1)) }),
            ("chmod", { _ = try fs.setattr(frozen, AttributeChanges(mode: 0o600)) }),
            ("chown", { _ = try fs.setattr(frozen, AttributeChanges(uid: 5)) }),
            ("utimes to now", { _ = try fs.setattr(frozen, AttributeChanges(atime: .now, mtime: .now)) }),
            ("utimes", { _ = try fs.setattr(frozen, AttributeChanges(mtime: .set(Timespec(seconds: 5, nanoseconds: 0)))) }),
            ("preallocate", { try fs.fallocate(frozen, offset: 0, length: 4 * block, mode: []) }),
            ("preallocate, keep size", { try fs.fallocate(frozen, offset: 0, length: 4 * block, mode: .keepSize) }),
            ("punch", { try fs.fallocate(frozen, offset: 0, length: block, mode: [.punchHole, .keepSize]) }),
            ("zero range", { try fs.fallocate(frozen, offset: 0, length: block, mode: .zeroRange) }),
            ("collapse", { try fs.fallocate(frozen, offset: 0, length: block, mode: .collapseRange) }),
            ("insert", { try fs.fallocate(frozen, offset: 0, length: block, mode: .insertRange) }),
            ("unshare", { try fs.fallocate(frozen, offset: 0, length: block, mode: .unshareRange) }),
            ("clone into", { _ = try fs.clone(from: source, sourceOffset: 0, to: frozen, destinationOffset: 0, length: block) }),
            ("dedupe into", { _ = try fs.dedupe(from: source, sourceOffset: 0, length: block, to: frozen, destinationOffset: 0) }),
            ("copy into", { _ = try fs.copyFileRange(from: source, sourceOffset: 0, to: frozen, destinationOffset: 0, length: 10) }),
            ("setxattr", { try fs.setxattr(frozen, name: self.bytes("user.new"), value: [2], flags: []) }),
            ("removexattr", { try fs.removexattr(frozen, name: self.bytes("user.kept")) }),
            ("link", { _ = try fs.link(frozen, newParent: directory, newName: self.bytes("again")) }),
            ("unlink", { try fs.unlink(parent: FileSystem.rootInode, name: self.bytes("frozen")) }),
            ("rename", { try fs.rename(parent: FileSystem.rootInode, name: self.bytes("frozen"), newParent: directory,
                                       newName: self.bytes("moved"), flags: []) }),
            ("rename over", { try fs.rename(parent: FileSystem.rootInode, name: self.bytes("source"), newParent: FileSystem.rootInode,
                                            newName: self.bytes("frozen"), flags: []) }),
            ("exchange", { try fs.rename(parent: FileSystem.rootInode, name: self.bytes("source"), newParent: FileSystem.rootInode,
                                         newName: self.bytes("frozen"), flags: .exchange) }),
            ("open for writing", { try fs.open(frozen, flags: O_WRONLY) }),
            ("open for reading and writing", { try fs.open(frozen, flags: O_RDWR | O_APPEND) }),
            ("open to truncate", { try fs.open(frozen, flags: O_RDONLY | O_TRUNC) }),
        ]
        let before = try volume.read(frozen, 3 * volume.blockSize, at: 0)
        for (name, operation) in refused {
            XCTAssertEqual(errno(of: operation), .notPermitted, name)
        }
        XCTAssertEqual(try volume.read(frozen, 3 * volume.blockSize, at: 0), before, "the data")
        XCTAssertEqual(try fs.getattr(frozen).mode & 0o7777, 0o644)
        XCTAssertEqual(try fs.listxattr(frozen), [bytes("user.kept")])
        XCTAssertNoThrow(try fs.rename(parent: FileSystem.rootInode, name: bytes("frozen"), newParent: FileSystem.rootInode,
                                       newName: bytes("frozen"), flags: []), "a rename onto itself changes nothing")
        XCTAssertNoThrow(try fs.open(frozen, flags: O_RDONLY), "reading is allowed")
        fs.release(frozen)
        XCTAssertEqual(try fs.getxattr(frozen, name: bytes("user.kept")), [1])
        XCTAssertNoThrow(try fs.clone(from: frozen, sourceOffset: 0, to: source, destinationOffset: 0, length: block),
                         "an immutable file may be cloned from")

        try fs.setFlags(frozen, [], by: .root)
        XCTAssertNoThrow(try volume.write(frozen, [1], at: 0))
        XCTAssertNoThrow(try fs.unlink(parent: FileSystem.rootInode, name: bytes("frozen")))
        try volume.unmountAndCheck()
    }

    /// No entry is added to, removed from or renamed within an immutable directory; the files
    /// in it are not themselves immutable.
    func testAnImmutableDirectoryKeepsItsEntries() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let root = FileSystem.rootInode
        let directory = try fs.mkdir(parent: root, name: bytes("d"), mode: 0o755, owner: .root).ino
        let inside = try fs.create(parent: directory, name: bytes("inside"), mode: 0o644, flags: 0, owner: .root).ino
        fs.release(inside)
        _ = try fs.mkdir(parent: directory, name: bytes("sub"), mode: 0o755, owner: .root)
        let outside = try file(volume, "outside")
        try fs.setFlags(directory, [.immutable], by: .root)

        let refused: [(String, () throws -> Void)] = [
            ("create", { _ = try fs.create(parent: directory, name: self.bytes("new"), mode: 0o644, flags: 0, owner: .root) }),
            ("mkdir", { _ = try fs.mkdir(parent: directory, name: self.bytes("newdir"), mode: 0o755, owner: .root) }),
            ("mknod", { _ = try fs.mknod(parent: directory, name: self.bytes("fifo"), mode: ExtentFSCore.FileType.fifo.rawValue | 0o644, rdev: 0, owner: .root) }),
            ("symlink", { _ = try fs.symlink(parent: directory, name: self.bytes("link"), target: self.bytes("x"), owner: .root) }),
            ("link into", { _ = try fs.link(outside, newParent: directory, newName: self.bytes("hard")) }),
            ("unlink", { try fs.unlink(parent: directory, name: self.bytes("inside")) }),
            ("rmdir", { try fs.rmdir(parent: directory, name: self.bytes("sub")) }),
            ("rename within", { try fs.rename(parent: directory, name: self.bytes("inside"), newParent: directory, newName: self.bytes("renamed"), flags: []) }),
            ("rename out", { try fs.rename(parent: directory, name: self.bytes("inside"), newParent: root, newName: self.bytes("out"), flags: []) }),
            ("rename in", { try fs.rename(parent: root, name: self.bytes("outside"), newParent: directory, newName: self.bytes("in"), flags: []) }),
            ("chmod", { _ = try fs.setattr(directory, AttributeChanges(mode: 0o700)) }),
            ("setxattr", { try fs.setxattr(directory, name: self.bytes("user.x"), value: [1], flags: []) }),
            ("rmdir of it", { try fs.rmdir(parent: root, name: self.bytes("d")) }),
        ]
        for (name, operation) in refused {
            XCTAssertEqual(errno(of: operation), .notPermitted, name)
        }
        XCTAssertNoThrow(try volume.write(inside, [7], at: 0), "a file in an immutable directory may change")
        XCTAssertNoThrow(try fs.lookup(parent: directory, name: bytes("inside")))
        try fs.setFlags(directory, [], by: .root)
        XCTAssertNoThrow(try fs.unlink(parent: directory, name: bytes("inside")))
        try volume.unmountAndCheck()
    }

    /// An append-only file takes data at its end and nothing else: no rewrite, truncate,
    /// hole, shift or clone, no open for writing without O_APPEND, no removal or rename.
    func testAnAppendOnlyFileOnlyGrowsAtItsEnd() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let block = UInt64(volume.blockSize)
        let log = try file(volume, "log")
        let source = try file(volume, "source")
        try fs.setFlags(log, [.appendOnly], by: .root)
        let size = try fs.getattr(log).size

        let refused: [(String, () throws -> Void)] = [
            ("overwrite", { _ = try volume.write(log, [1], at: 0) }),
            ("write past the end", { _ = try volume.write(log, [1], at: size + 1) }),
            ("truncate", { _ = try fs.setattr(log, AttributeChanges(size: size + block)) }),
            ("chmod", { _ = try fs.setattr(log, AttributeChanges(mode: 0o600)) }),
            ("chown", { _ = try fs.setattr(log, AttributeChanges(gid: 5)) }),
            ("utimes", { _ = try fs.setattr(log, AttributeChanges(atime: .set(Timespec(seconds: 5, nanoseconds: 0)))) }),
            ("punch", { try fs.fallocate(log, offset: 0, length: block, mode: [.punchHole, .keepSize]) }),
            ("zero range", { try fs.fallocate(log, offset: 0, length: block, mode: .zeroRange) }),
            ("zero range, keep size", { try fs.fallocate(log, offset: 0, length: block, mode: [.zeroRange, .keepSize]) }),
            ("collapse", { try fs.fallocate(log, offset: 0, length: block, mode: .collapseRange) }),
            ("insert", { try fs.fallocate(log, offset: 0, length: block, mode: .insertRange) }),
            ("unshare", { try fs.fallocate(log, offset: 0, length: block, mode: .unshareRange) }),
            ("clone into", { _ = try fs.clone(from: source, sourceOffset: 0, to: log, destinationOffset: 2 * block, length: block) }),
            ("dedupe into", { _ = try fs.dedupe(from: source, sourceOffset: 0, length: block, to: log, destinationOffset: 0) }),
            ("copy into", { _ = try fs.copyFileRange(from: source, sourceOffset: 0, to: log, destinationOffset: size, length: 10) }),
            ("setxattr", { try fs.setxattr(log, name: self.bytes("user.x"), value: [1], flags: []) }),
            ("link", { _ = try fs.link(log, newParent: FileSystem.rootInode, newName: self.bytes("again")) }),
            ("unlink", { try fs.unlink(parent: FileSystem.rootInode, name: self.bytes("log")) }),
            ("rename", { try fs.rename(parent: FileSystem.rootInode, name: self.bytes("log"), newParent: FileSystem.rootInode,
                                       newName: self.bytes("moved"), flags: []) }),
            ("open for writing", { try fs.open(log, flags: O_WRONLY) }),
            ("open to truncate", { try fs.open(log, flags: O_WRONLY | O_APPEND | O_TRUNC) }),
        ]
        for (name, operation) in refused {
            XCTAssertEqual(errno(of: operation), .notPermitted, name)
        }
        XCTAssertNoThrow(try fs.open(log, flags: O_WRONLY | O_APPEND), "open to append")
        fs.release(log)
        XCTAssertEqual(try volume.write(log, [9, 9], at: size), 2, "a write at the end")
        XCTAssertEqual(try fs.getattr(log).size, size + 2)
        XCTAssertNoThrow(try fs.fallocate(log, offset: 0, length: 8 * block, mode: .keepSize), "preallocation changes no byte")
        XCTAssertNoThrow(try fs.fallocate(log, offset: 0, length: 8 * block, mode: []), "nor does growing it with fallocate")
        XCTAssertNoThrow(try fs.setattr(log, AttributeChanges(atime: .now, mtime: .now)), "times to now")
        try fs.setFlags(log, [], by: .root)
        XCTAssertNoThrow(try fs.unlink(parent: FileSystem.rootInode, name: bytes("log")))
        try volume.unmountAndCheck()
    }

    /// An append-only directory takes new entries but loses none.
    func testAnAppendOnlyDirectoryKeepsItsEntries() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let directory = try fs.mkdir(parent: FileSystem.rootInode, name: bytes("d"), mode: 0o755, owner: .root).ino
        let first = try fs.create(parent: directory, name: bytes("first"), mode: 0o644, flags: 0, owner: .root).ino
        fs.release(first)
        try fs.setFlags(directory, [.appendOnly], by: .root)
        let second = try fs.create(parent: directory, name: bytes("second"), mode: 0o644, flags: 0, owner: .root).ino
        fs.release(second)
        XCTAssertEqual(errno { try fs.unlink(parent: directory, name: self.bytes("first")) }, .notPermitted, "unlink")
        XCTAssertEqual(errno { try fs.rename(parent: directory, name: self.bytes("first"), newParent: directory,
                                             newName: self.bytes("renamed"), flags: []) }, .notPermitted, "rename")
        XCTAssertEqual(errno { try fs.rename(parent: directory, name: self.bytes("first"), newParent: directory,
                                             newName: self.bytes("second"), flags: []) }, .notPermitted, "rename over")
        try fs.setFlags(directory, [], by: .root)
        try volume.unmountAndCheck()
    }

    /// Set at create, the same after every change of the inode and after a remount.
    func testTheBirthTimeIsSetAtCreateAndNeverChanges() throws {
        let volume = try TestVolume()
        let before = Timespec.now
        let ino = try file(volume, "born")
        let born = try volume.fs.birthTime(ino)
        XCTAssertGreaterThanOrEqual(born.seconds, before.seconds)
        XCTAssertLessThanOrEqual(born.seconds, Timespec.now.seconds)
        usleep(20_000)
        _ = try volume.write(ino, [1, 2, 3], at: 100)
        _ = try volume.fs.setattr(ino, AttributeChanges(mode: 0o600, mtime: .set(Timespec(seconds: 1, nanoseconds: 0))))
        try volume.fs.setxattr(ino, name: bytes("user.a"), value: [1], flags: [])
        try volume.fs.rename(parent: FileSystem.rootInode, name: bytes("born"), newParent: FileSystem.rootInode, newName: bytes("renamed"), flags: [])
        XCTAssertNotEqual(try volume.fs.getattr(ino).ctime, born, "the ctime moved on")
        XCTAssertEqual(try volume.fs.birthTime(ino), born)
        try volume.remount()
        XCTAssertEqual(try volume.fs.birthTime(ino), born, "after a remount")
        XCTAssertEqual(try volume.fs.birthTime(FileSystem.rootInode).seconds > 0, true, "mkfs's root has one too")
        try volume.unmountAndCheck()
        let listing = try Volume.checkReport(image: volume.image, listingInodes: true).inodeListing
        XCTAssertEqual(listing.first { $0.ino == ino }?.birthTime, born, "fsck lists it")
    }

    func testTheLabelIsSetAtMkfsChangedByAnAdministratorAndKeptInBothCopies() throws {
        let volume = try TestVolume()
        try volume.fs.unmount()
        volume.fs = nil
        var format = FormatOptions()
        format.size = 64 << 20
        format.force = true
        format.label = bytes("first label")
        try Volume.format(image: volume.image, options: format)
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(volume.fs.label, bytes("first label"))

        XCTAssertEqual(errno { try volume.fs.setLabel(self.bytes("x"), by: self.user) }, .notPermitted, "not CAP_SYS_ADMIN")
        XCTAssertEqual(errno { try volume.fs.setLabel([UInt8](repeating: 0x41, count: 256), by: .root) }, .invalidArgument, "256 bytes")
        XCTAssertEqual(errno { try volume.fs.setLabel(self.bytes("a\0b"), by: .root) }, .invalidArgument, "a NUL")
        let longest = [UInt8](repeating: 0x6C, count: Superblock.maxLabelBytes)
        try volume.fs.setLabel(longest, by: .root)
        // Both copies, at once: a mount that falls back to the older one keeps the new label.
        let store = try BackingStore(path: volume.image, writable: false)
        for offset in Superblock.slotOffsets {
            guard case .valid(let copy) = Superblock.decode(try store.read(Superblock.encodedSize, at: offset)) else {
                return XCTFail("superblock copy at \(offset) does not decode")
            }
            XCTAssertEqual(copy.label, longest, "copy at \(offset)")
        }
        try volume.remount()
        XCTAssertEqual(volume.fs.label, longest)
        try volume.fs.unmount()
        XCTAssertEqual(try Volume.checkReport(image: volume.image).label, longest, "fsck reads it")
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        try volume.fs.setLabel([], by: .root)
        try volume.remount()
        XCTAssertEqual(volume.fs.label, [])

        format.label = [UInt8](repeating: 0x41, count: 256)
        XCTAssertThrowsError(try Volume.format(image: volume.directory + "/other.img", options: format), "mkfs with 256 bytes")
        unlink(volume.directory + "/other.img")
        try volume.unmountAndCheck()
    }

    /// A version 4 image (images without btime and flags) mounts, converts at once (every
    /// image in its tree rewritten), and then keeps flags; its inodes' birth times are unknown.
    func testAVersion4ImageConvertsAtMount() throws {
        let volume = try TestVolume()
        let kept = try file(volume, "kept")
        try volume.fs.setxattr(kept, name: bytes("user.a"), value: [1, 2], flags: [])
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: bytes("d"), mode: 0o755, owner: .root).ino
        _ = try volume.fs.symlink(parent: directory, name: bytes("link"), target: bytes("kept"), owner: .root)
        let data = try volume.read(kept, 2 * volume.blockSize, at: 0)
        try volume.fs.unmount()
        volume.fs = nil
        do {
            var crafting = try ImageCrafting(image: volume.image)
            try crafting.writeTree(try crafting.contents(), version: 4)
            XCTAssertEqual(try VolumeLoader.readSuperblock(crafting.store).superblock.version, 4)
        }
        XCTAssertEqual(try Volume.check(image: volume.image), [], "a version 4 image is clean")

        // Read-only, nothing is converted; made writable, it converts before any change.
        var readOnly = volume.options
        readOnly.readOnly = true
        volume.fs = try FileSystem.mount(image: volume.image, options: readOnly)
        let store = try BackingStore(path: volume.image, writable: false)
        XCTAssertEqual(try VolumeLoader.readSuperblock(store).superblock.version, 4, "a read-only mount writes nothing")
        XCTAssertEqual(try volume.fs.flags(kept), [])
        try volume.fs.makeWritable()
        XCTAssertEqual(try VolumeLoader.readSuperblock(store).superblock.version, Superblock.currentVersion, "converted when made writable")
        try volume.fs.unmount()
        do {
            var crafting = try ImageCrafting(image: volume.image)
            try crafting.writeTree(try crafting.contents(), version: 4)
        }
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try VolumeLoader.readSuperblock(store).superblock.version, Superblock.currentVersion, "converted at mount")
        XCTAssertEqual(try volume.read(kept, 2 * volume.blockSize, at: 0), data)
        XCTAssertEqual(try volume.fs.getxattr(kept, name: bytes("user.a")), [1, 2])
        XCTAssertEqual(try volume.fs.readlink(try volume.lookup("link", in: directory).ino), bytes("kept"))
        XCTAssertEqual(try volume.fs.birthTime(kept), Timespec(seconds: 0, nanoseconds: 0), "not known before version 6")
        XCTAssertEqual(try volume.fs.flags(kept), [])
        try volume.fs.setFlags(kept, [.appendOnly], by: .root)
        try volume.remount()
        XCTAssertEqual(try volume.fs.flags(kept), [.appendOnly])
        try volume.fs.setFlags(kept, [], by: .root)
        try volume.unmountAndCheck()
    }

    /// Flag bits no extentfs sets are damage, in the tree and in a log record: refused, never
    /// masked (a dropped bit could be an immutable file become writable) and never a trap.
    func testUnknownFlagBitsFromDiskAreRefused() throws {
        let volume = try TestVolume()
        let ino = try file(volume, "file")
        try volume.fs.unmount()
        volume.fs = nil
        var crafting = try ImageCrafting(image: volume.image)
        var contents = try crafting.contents()
        let index = try XCTUnwrap(contents.inodes.firstIndex { $0.ino == ino })
        contents.inodes[index].flags = InodeFlags(rawValue: 0x10 | 0x8000_0000)
        try crafting.writeTree(contents)
        XCTAssertThrowsError(try FileSystem.mount(image: volume.image, options: volume.options)) { error in
            XCTAssertTrue("\(error)".contains("unknown flags 0x80000000"), "\(error)")
        }
        XCTAssertThrowsError(try Volume.check(image: volume.image), "fsck refuses it too")

        // The same in a log record (kind 4), replayed over a state that has the inode.
        var image = contents.inodes[index]
        image.flags = InodeFlags(rawValue: 0x200)
        let record = LogRecord(nextInode: contents.nextInode, inodes: [.image(image)], referenceRanges: []).encode()
        var state = ReplayState(nextInode: contents.nextInode, inodes: [:], referenceCounts: ReferenceCounts())
        XCTAssertThrowsError(try LogRecord.apply(record, to: &state, superblock: crafting.superblock, cache: nil)) { error in
            XCTAssertTrue("\(error)".contains("unknown flags"), "\(error)")
        }
        image.flags = [.immutable, .noDump]
        let good = LogRecord(nextInode: contents.nextInode, inodes: [.image(image)], referenceRanges: []).encode()
        XCTAssertNoThrow(try LogRecord.apply(good, to: &state, superblock: crafting.superblock, cache: nil))
        XCTAssertEqual(state.inodes[ino]?.flags, [.immutable, .noDump])
    }

    /// Records of kind 1 (before version 6) still replay: no flags, birth time unknown.
    func testARecordOfTheLayoutBeforeVersion6Replays() throws {
        let inode = Inode(ino: 7, mode: ExtentFSCore.FileType.regular.rawValue | 0o644, uid: 0, gid: 0, time: .now, cache: nil)
        var writer = ByteWriter()
        writer.u64(10)
        writer.u64(1)
        writer.u8(LogRecord.Kind.legacyImage)
        CheckpointCodec.encode(InodeImage(inode), into: &writer, layout: .beforeVersion6)
        writer.u64(0)
        var state = ReplayState(nextInode: 10, inodes: [:], referenceCounts: ReferenceCounts())
        try LogRecord.apply(writer.bytes, to: &state, superblock: DecoderFuzzing.sampleSuperblock(blockSize: 4096), cache: nil)
        XCTAssertEqual(state.inodes[7]?.flags, [])
        XCTAssertEqual(state.inodes[7]?.btime, Timespec(seconds: 0, nanoseconds: 0))
        XCTAssertEqual(state.inodes[7]?.mtime, inode.mtime)
    }

    /// A superblock whose label holds a NUL is a damaged copy (the label is handed out as a C
    /// string).
    func testALabelWithANulIsDamage() throws {
        var superblock = DecoderFuzzing.sampleSuperblock(blockSize: 4096)
        superblock.label = bytes("fine")
        guard case .valid(let decoded) = Superblock.decode(superblock.encode()) else { return XCTFail("a label of 4 bytes") }
        XCTAssertEqual(decoded.label, bytes("fine"))
        superblock.label = bytes("a\0b")
        guard case .damaged = Superblock.decode(superblock.encode()) else { return XCTFail("a NUL in the label was taken") }
        // Version 4 had no label: whatever those bytes hold is not read.
        superblock.version = 4
        superblock.checkpoint = .tree(nil)
        guard case .valid(let old) = Superblock.decode(superblock.encode()) else { return XCTFail("version 4") }
        XCTAssertEqual(old.label, [])
    }
}
