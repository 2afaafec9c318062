import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// Issue 9, requirement 4: a request that only reads one cached inode (or opens, releases or
/// forgets it) takes that inode's own lock (Inode.fieldLock) and the inode table's, not
/// Metadata.lock, so no transaction (however long: a tree read under the lock, a big punch, a
/// checkpoint's snapshot) holds it up; readers under the inode's lock alone see every change
/// whole; and transactions on one inode's data run shared, alongside others.
final class InodeLocksTests: XCTestCase {
    func testReadsOfACachedInodeDoNotWaitForMetadataLock() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(256 << 10, seed: 7)
        try volume.write(file, data, at: 0)
        try volume.write(file, data, at: 1 << 20)  // a hole between
        try fs.sync()
        // Half of it cached, the rest only on disk.
        XCTAssertEqual(try volume.read(file, 64 << 10, at: 0), Array(data[0..<(64 << 10)]))
        let link = try fs.symlink(parent: FileSystem.rootInode, name: Array("link".utf8), target: Array("file".utf8), owner: .root).ino
        try fs.setxattr(file, name: Array("user.note".utf8), value: Array("kept".utf8), flags: [])
        // Made in this mount, so it holds all its entries (the root, read back at mount, holds
        // only those changed since).
        let directory = try fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
        let inner = try volume.create("inner", in: directory)

        let opensBefore = try XCTUnwrap(fs.metadata.inodes[file]).openCount

        // Any transaction could be holding it: here the test holds it itself.
        fs.metadata.lock.lockExclusive()
        let outcome = LockOutcome()
        let inTime = outcome.finishesWhileHeld(release: fs.metadata.lock.unlock) {
            do {
                if try fs.getattr(file).size != (1 << 20) + (256 << 10) { outcome.fail("getattr: wrong size") }
                var cached: [UInt8] = []
                try fs.read(file, offset: 4096, count: 8192) { cached = Array($0) }
                if cached != Array(data[4096..<12288]) { outcome.fail("cached read: wrong data") }
                var fromDisk: [UInt8] = []
                try fs.read(file, offset: 1 << 20, count: 128 << 10) { fromDisk = Array($0) }
                if fromDisk != Array(data[0..<(128 << 10)]) { outcome.fail("read from disk: wrong data") }
                if try fs.seek(file, offset: 300 << 10, to: .data) != 1 << 20 { outcome.fail("SEEK_DATA: wrong offset") }
                if try fs.readlink(link) != Array("file".utf8) { outcome.fail("readlink: wrong target") }
                if try fs.getxattr(file, name: Array("user.note".utf8)) != Array("kept".utf8) { outcome.fail("getxattr: wrong value") }
                if try fs.listxattr(file) != [Array("user.note".utf8)] { outcome.fail("listxattr: wrong names") }
                if try fs.lookup(parent: FileSystem.rootInode, name: Array("file".utf8)).ino != file { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: directory, name: Array("inner".utf8)).ino != inner { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: directory, name: Array("..".utf8)).ino != FileSystem.rootInode { outcome.fail("lookup ..: wrong inode") }
                do {
                    _ = try fs.lookup(parent: directory, name: Array("absent".utf8))
                    outcome.fail("lookup of an absent name succeeded")
                } catch Errno.noSuchFileOrDirectory {}
                fs.forget(inner, count: 2)
                try fs.open(file, flags: O_RDONLY)
                try fs.open(file, flags: O_RDWR)
                fs.release(file)
                do {
                    try fs.open(directory, flags: O_RDWR)
                    outcome.fail("a directory opened for writing")
                } catch Errno.isDirectory {}
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "reads of a cached inode waited for Metadata.lock")
        XCTAssertEqual(outcome.all, [])
        // Counted as the kernel counts: create's lookup and the lookup taken, less the two
        // forgotten; two opens and a release.
        XCTAssertEqual(fs.metadata.inodes[inner]?.lookupCount, 0)
        XCTAssertEqual(fs.metadata.inodes[file]?.openCount, opensBefore + 1)
        try volume.unmountAndCheck()
    }

    /// Inodes the table does not hold are read back under Metadata.lock held shared (with the
    /// table's lock), so a cold lookup, getattr, open, readlink, getxattr, listing or removal
    /// (freeing the inode too) waits for no shared transaction; nor do opendir, statfs, the
    /// flags and their change, the birth time, the clone's read check, or an fsync with nothing to log (checked: with `readingTreeOutsideTheLock` holding the lock
    /// exclusively again, each waits here).
    func testReadingInodesBackDoesNotWaitForASharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let kept = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("kept".utf8), mode: 0o755, owner: .root).ino
        let files = try (0..<40).map { try volume.create("f\($0)", in: kept) }
        let data = pattern(9_000, seed: 5)
        try volume.write(files[1], data, at: 0)
        try volume.write(files[10], data, at: 0)
        try volume.fs.setxattr(files[2], name: Array("user.note".utf8), value: Array("kept".utf8), flags: [])
        let link = try volume.fs.symlink(parent: kept, name: Array("link".utf8), target: Array("f1".utf8), owner: .root).ino
        try volume.remount()
        let fs = volume.fs!
        for ino in files + [kept, link] { XCTAssertNil(fs.metadata.inodes[ino], "inode \(ino) held after mount") }
        let loadsBefore = fs.metadata.withLock { fs.metadata.cacheState.loads }
        let inodesBefore = fs.metadata.withLock { fs.metadata.inodeCount }
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                if try fs.getattr(files[1]).size != 9_000 { outcome.fail("getattr: wrong size") }
                if try fs.lookup(parent: FileSystem.rootInode, name: Array("kept".utf8)).ino != kept { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: kept, name: Array("f7".utf8)).ino != files[7] { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: kept, name: Array("..".utf8)).ino != FileSystem.rootInode { outcome.fail("lookup ..: wrong inode") }
                if try fs.readlink(link) != Array("f1".utf8) { outcome.fail("readlink: wrong target") }
                if try fs.getxattr(files[2], name: Array("user.note".utf8)) != Array("kept".utf8) { outcome.fail("getxattr: wrong value") }
                try fs.open(files[3], flags: O_RDONLY)
                fs.release(files[3])
                if errno(of: { _ = try fs.lookup(parent: kept, name: Array("absent".utf8)) }) != .noSuchFileOrDirectory {
                    outcome.fail("lookup of an absent name did not fail with ENOENT")
                }
                // A listing with attributes reads back every inode it names.
                let end = try fs.directoryEndCookie(kept)
                var listed: [InodeNumber: FileAttributes] = [:]
                try fs.readdir(kept, after: 0, before: end, plus: true) { entry, attributes in
                    listed[entry.ino] = attributes
                    return true
                }
                if listed.count != files.count + 3 { outcome.fail("readdir: \(listed.count) entries") }
                if listed[files[1]]?.size != 9_000 { outcome.fail("readdir: wrong attributes") }
                for ino in files + [link] { fs.forget(ino, count: 1) }
                // Requests that read one inode's fields, and fsyncs with nothing to log.
                try fs.opendir(kept)
                if errno(of: { try fs.opendir(files[3]) }) != .notDirectory { outcome.fail("opendir of a file") }
                if fs.statistics().totalInodes == 0 { outcome.fail("statfs: no inodes") }
                if try fs.flags(files[4]) != [] { outcome.fail("flags: set") }
                try fs.setFlags(files[6], [.noDump], by: .root)
                if try fs.flags(files[6]) != [.noDump] { outcome.fail("flags: not changed") }
                if try fs.birthTime(files[4]).seconds == 0 { outcome.fail("birth time: none") }
                if try !fs.mayRead(files[4], by: .root) { outcome.fail("mayRead: refused root") }
                try fs.fsync(files[5], dataOnly: false)
                try fs.fsyncdir(kept)
                // Removals are shared, and so is freeing the inode: when the kernel lets go of
                // it, or at once when it held no reference.
                if try fs.lookup(parent: kept, name: Array("f9".utf8)).ino != files[9] { outcome.fail("lookup: wrong inode") }
                try fs.unlink(parent: kept, name: Array("f9".utf8))
                if fs.metadata.inodes[files[9]]?.nlink != 0 { outcome.fail("f9: not kept while the kernel references it") }
                fs.forget(files[9], count: 1)
                try fs.unlink(parent: kept, name: Array("f10".utf8))
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a request that read an inode back waited for a shared transaction on another inode")
        XCTAssertEqual(outcome.all, [])
        XCTAssertGreaterThanOrEqual(fs.metadata.withLock { fs.metadata.cacheState.loads } - loadsBefore, 7)
        // One member per inode, however many requests read it back.
        XCTAssertTrue(fs.metadata.inodes[files[7]] === fs.metadata.inodes[files[7]])
        XCTAssertEqual(fs.metadata.inodes[files[7]]?.lookupCount, 1)
        XCTAssertNil(fs.metadata.inodes[files[9]], "the unlinked inode was not freed when the kernel let go of it")
        XCTAssertNil(fs.metadata.inodes[files[10]], "the unlinked inode no one referenced was not freed")
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.inodeCount }, inodesBefore - 2)
        try volume.remount()
        XCTAssertEqual(try volume.read(files[1], 9_000, at: 0), data)
        XCTAssertEqual(errno(of: { _ = try volume.lookup("f9", in: kept) }), .noSuchFileOrDirectory)
        XCTAssertEqual(try volume.lookup("f8", in: kept).ino, files[8])
        try volume.unmountAndCheck()
    }

    /// The kernel's FORGET of an inode the table let go drops the count kept for it under the
    /// table's lock with Metadata.lock shared, so it waits for no shared transaction either
    /// (checked: with Metadata.lock exclusive again, it waits here).
    func testForgettingAnInodeLetGoDoesNotWaitForASharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let file = try volume.create("file")
        volume.options.metadataCacheBytes = 0
        try volume.remount()
        let fs = volume.fs!
        for _ in 0..<3 { _ = try fs.lookup(parent: FileSystem.rootInode, name: Array("file".utf8)) }
        fs.metadata.withLock { fs.metadata.evictToBudget(limit: .max) }
        XCTAssertNil(fs.metadata.inodes[file])
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.cacheState.keptLookups(of: file) }, 3)
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            fs.forget(file, count: 2)
        }
        XCTAssertTrue(inTime, "a FORGET of an inode let go waited for a shared transaction")
        XCTAssertEqual(outcome.all, [])
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.cacheState.keptLookups(of: file) }, 1)
        // Read back, the inode takes the count left (and keeps it if it is let go again).
        XCTAssertEqual(try fs.getattr(file).ino, file)
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.inodes[file]?.lookupCount ?? fs.metadata.cacheState.keptLookups(of: file) }, 1)
        fs.forget(file, count: 1)
        try volume.unmountAndCheck()
    }

    /// Loads from several threads at once, past the table's budget: each inode is read back as
    /// one member however many threads ask for it together, and the table is let go back under
    /// its budget after (`evictAfterSharedLoads`), with the kernel's lookup counts kept exact.
    func testConcurrentReadsBackMakeOneMemberEachAndKeepTheBudget() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let files = try (0..<300).map { try volume.create("f\($0)") }
        for file in files { volume.fs.forget(file, count: 1) }
        volume.options.metadataCacheBytes = 256 << 10
        try volume.remount()
        let fs = volume.fs!
        let budget = fs.metadata.withLock { fs.metadata.cacheState.budgetBytes }
        let outcome = LockOutcome()
        let threads = 4
        let rounds = 3
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<rounds {
                // Every thread asks for every file, in an order of its own (steps prime to 300).
                for step in 0..<files.count {
                    let index = (step * [1, 7, 11, 13][thread] + round * 37) % files.count
                    do {
                        let attributes = try fs.lookup(parent: FileSystem.rootInode, name: Array("f\(index)".utf8))
                        if attributes.ino != files[index] { outcome.fail("f\(index): inode \(attributes.ino)") }
                        if try fs.getattr(files[index]).ino != files[index] { outcome.fail("getattr f\(index)") }
                    } catch {
                        outcome.fail("f\(index): \(error)")
                    }
                }
            }
        }
        XCTAssertEqual(outcome.all, [])
        // Each lookup took one reference, whichever member it reached and whether or not the
        // inode was let go and read back since.
        for file in files {
            let counted = fs.metadata.withLock {
                fs.metadata.inodes[file]?.lookupCount ?? fs.metadata.cacheState.keptLookups(of: file) ?? 0
            }
            XCTAssertEqual(counted, UInt64(threads * rounds), "inode \(file)")
        }
        let (charged, evictions) = fs.metadata.withLock { (fs.metadata.cacheState.chargedBytes, fs.metadata.cacheState.evictions) }
        XCTAssertGreaterThan(evictions, 0)
        XCTAssertLessThanOrEqual(charged, budget + 4 * InodeCacheState.inodeOverheadBytes * 2, "the table stayed past its budget")
        for file in files { fs.forget(file, count: UInt64(threads * rounds)) }
        try volume.unmountAndCheck()
    }

    /// Readers under the inode's lock alone while its size, block map and times change: every
    /// answer is one the file had (sizes from the set written, data from the pattern or zeros).
    func testReadersSeeChangesOfSizeAndBlockMapWhole() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(512 << 10, seed: 11)
        let sizes: Set<UInt64> = [UInt64(data.count), 128 << 10, 300 << 10]
        try volume.write(file, data, at: 0)
        let stop = StopFlag()
        let outcome = LockOutcome()
        let group = DispatchGroup()
        for reader in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var rounds = 0
                while !stop.isSet || rounds < 50 {
                    rounds += 1
                    do {
                        let size = try fs.getattr(file).size
                        if !sizes.contains(size) { outcome.fail("reader \(reader): size \(size)") }
                        let offset = UInt64((rounds * 12_288) % data.count)
                        try fs.read(file, offset: offset, count: 16 << 10) { bytes in
                            for (index, byte) in bytes.enumerated() where byte != 0 && byte != data[Int(offset) + index] {
                                outcome.fail("reader \(reader): byte \(Int(offset) + index) is \(byte)")
                                break
                            }
                        }
                        _ = try? fs.seek(file, offset: offset, to: .hole)
                    } catch {
                        outcome.fail("reader \(reader): \(error)")
                    }
                }
            }
        }
        for round in 0..<600 {
            switch round % 3 {
            case 0: _ = try fs.setattr(file, AttributeChanges(size: 128 << 10))
            case 1: _ = try fs.setattr(file, AttributeChanges(size: 300 << 10))
            default: try volume.write(file, data, at: 0)
            }
            if round % 10 == 0 { try fs.sync() }
        }
        stop.set()
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(outcome.all, [])
        try volume.unmountAndCheck()
    }
}

extension InodeLocksTests {
    /// A write and a setattr run their transactions with Metadata.lock shared
    /// (Metadata.sharedTransaction): while another shared holder waits on the device, they
    /// complete.
    func testAWriteAndASetattrDoNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(40_000, seed: 3)
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                if try volume.write(file, data, at: 5000) != data.count { outcome.fail("short write") }
                let changed = try fs.setattr(file, AttributeChanges(mode: 0o600, uid: 7, mtime: .set(Timespec(seconds: 1000, nanoseconds: 5))))
                if changed.mode & 0o7777 != 0o600 || changed.uid != 7 || changed.mtime != Timespec(seconds: 1000, nanoseconds: 5) {
                    outcome.fail("setattr: \(changed)")
                }
                try fs.setxattr(file, name: Array("user.kept".utf8), value: [UInt8](repeating: 1, count: 3000), flags: [])
                try fs.setxattr(file, name: Array("user.gone".utf8), value: [2], flags: [])
                try fs.removexattr(file, name: Array("user.gone".utf8))
                // An access ACL that the mode cannot say: stored, and the mode's group bits from its mask.
                try fs.setxattr(file, name: AccessControlList.accessXattrName, value: Self.aclWithANamedUser, flags: [])
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a write, a setattr or an xattr change waited for a shared transaction")
        XCTAssertEqual(outcome.all, [])
        XCTAssertEqual(try fs.getattr(file).size, 45_000)
        XCTAssertEqual(try volume.read(file, data.count, at: 5000), data)
        try volume.remount()
        XCTAssertEqual(try fs.listxattr(file), [AccessControlList.accessXattrName, Array("user.kept".utf8)].sorted { $0.lexicographicallyPrecedes($1) })
        XCTAssertEqual(try fs.getxattr(file, name: Array("user.kept".utf8)), [UInt8](repeating: 1, count: 3000))
        XCTAssertEqual(try fs.getattr(file).mode & 0o777, 0o650, "the mask's bits are the group's")
        try volume.unmountAndCheck()
    }

    /// user::rw-, user:1000:r-x, group::r--, mask::r-x, other::--- (the xattr's binary form).
    static let aclWithANamedUser: [UInt8] = {
        var bytes: [UInt8] = [2, 0, 0, 0]
        func entry(_ tag: UInt16, _ perm: UInt16, _ id: UInt32) {
            withUnsafeBytes(of: tag.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: perm.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: id.littleEndian) { bytes += $0 }
        }
        entry(0x01, 6, .max)
        entry(0x02, 5, 1000)
        entry(0x04, 4, .max)
        entry(0x10, 5, .max)
        entry(0x20, 0, .max)
        return bytes
    }()

    /// Writeback allocates, converts and logs the size it wrote in shared transactions on its
    /// inode: it completes while another shared transaction is held, and its data is on disk.
    func testWritebackDoesNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(300_000, seed: 5)
        try volume.write(file, data, at: 0)
        let inode = try XCTUnwrap(fs.metadata.inodes[file])
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do { try fs.writeback(inode) } catch { outcome.fail("\(error)") }
        }
        XCTAssertTrue(inTime, "writeback waited for a shared transaction")
        XCTAssertEqual(outcome.all, [])
        XCTAssertFalse(inode.pages!.hasDirtyPages)
        XCTAssertTrue(inode.extents.extents.allSatisfy { $0.state == .written })
        try volume.remount()
        XCTAssertEqual(try volume.read(file, data.count, at: 0), data)
        try volume.unmountAndCheck()
    }

    /// A preallocation, a punched hole, a zeroed range, a truncate, an unshare, a collapse and an
    /// insert change their file's size or map, allocate or lower reference counts and free under
    /// the allocator's lock, in transactions shared on the file: they complete while another
    /// shared transaction is held, and free what they unmapped.
    func testSpaceChangesOfOneFileDoNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(400_000, seed: 8)
        try volume.write(file, data, at: 0)
        let other = try volume.create("other")
        let otherData = pattern(64 << 10, seed: 9)
        try volume.write(other, otherData, at: 0)
        try fs.sync()
        let clone = try volume.create("clone")
        XCTAssertEqual(try fs.clone(from: other, sourceOffset: 0, to: clone, destinationOffset: 0, length: 64 << 10), 64 << 10)
        try fs.sync()
        let freeBefore = fs.statistics().freeBlocks
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                try fs.fallocate(file, offset: 300_000, length: 300_000, mode: [])
                if (try? fs.getattr(file).size) != 600_000 { outcome.fail("preallocation did not extend the file") }
                try fs.fallocate(file, offset: 3000, length: 12_000, mode: [.punchHole, .keepSize])  // unmaps blocks 1 and 2
                try fs.fallocate(file, offset: 20_000, length: 30_000, mode: [.zeroRange, .keepSize])  // blocks 5 to 11 unwritten
                if (try? volume.read(file, 30_000, at: 20_000)) != [UInt8](repeating: 0, count: 30_000) { outcome.fail("the zeroed range reads back data") }
                _ = try fs.setattr(file, AttributeChanges(size: 10_000))
                _ = try fs.setattr(file, AttributeChanges(size: 90_000))
                try fs.fallocate(clone, offset: 0, length: 64 << 10, mode: [.unshareRange, .keepSize])  // copies what it shares
                try fs.fallocate(other, offset: 8192, length: 8192, mode: [.collapseRange])
                try fs.fallocate(other, offset: 4096, length: 4096, mode: [.insertRange])
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a preallocation, a punch, a zero range, a truncate, an unshare, a collapse or an insert waited for a shared transaction")
        XCTAssertEqual(outcome.all, [])
        try fs.sync()
        XCTAssertGreaterThan(fs.statistics().freeBlocks, freeBefore + 60, "the blocks past 10,000 bytes are free")
        try volume.remount()
        var expected = Array(data[0..<10_000]) + [UInt8](repeating: 0, count: 80_000)
        expected.replaceSubrange(3000..<10_000, with: [UInt8](repeating: 0, count: 7000))
        XCTAssertEqual(try volume.read(file, 90_000, at: 0), expected)
        XCTAssertEqual(try volume.read(clone, 64 << 10, at: 0), otherData)
        let shifted = Array(otherData[0..<4096]) + [UInt8](repeating: 0, count: 4096) + Array(otherData[4096..<8192]) + Array(otherData[16384...])
        XCTAssertEqual(try fs.getattr(other).size, UInt64(shifted.count))
        XCTAssertEqual(try volume.read(other, shifted.count, at: 0), shifted)
        XCTAssertTrue(fs.metadata.withLock { fs.metadata.referenceCounts.isEmpty }, "the unshared clone shares nothing")
        try volume.unmountAndCheck()
    }

    /// Files sharing blocks (clones of one source): some are truncated, punched, unshared and
    /// written again while the others are overwritten, preallocated, zeroed, shifted (insert and
    /// collapse) and written back, all at once.
    /// Truncates and punches lower the shared blocks' counts in shared transactions while
    /// writeback decides, block by block, whether to copy on write: every file reads back what
    /// was last written to it, and fsck's recount of the reference counts matches.
    func testTruncatesRacingWritebackOfClonesKeepEveryFileWhole() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let source = try volume.create("source")
        let original = pattern(256 << 10, seed: 21)
        try volume.write(source, original, at: 0)
        try fs.sync()
        let clones = try (0..<4).map { index -> InodeNumber in
            let clone = try volume.create("clone\(index)")
            XCTAssertEqual(try fs.clone(from: source, sourceOffset: 0, to: clone, destinationOffset: 0, length: UInt64(original.count)),
                           UInt64(original.count))
            return clone
        }
        try fs.sync()
        XCTAssertFalse(fs.metadata.withLock { fs.metadata.referenceCounts.isEmpty })
        let outcome = LockOutcome()
        let group = DispatchGroup()
        let expected = (0..<4).map { _ in ExpectedBytes(original) }
        for (index, clone) in clones.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let data = pattern(64 << 10, seed: UInt64(100 + index))
                do {
                    for round in 0..<150 {
                        if index % 2 == 0 {
                            // Truncated below the shared blocks, then written back up past them.
                            let size = UInt64((round * 53 + index * 7) % 60) * 4096
                            _ = try fs.setattr(clone, AttributeChanges(size: size))
                            expected[index].truncate(to: Int(size))
                            let offset = Int(size)
                            let count = try data.withUnsafeBytes { try fs.write(clone, offset: UInt64(offset), $0) }
                            expected[index].write(Array(data[0..<count]), at: offset)
                            // And a hole punched in what is left of the shared blocks.
                            let hole = (round % 7) * 4096 + 100
                            try fs.fallocate(clone, offset: UInt64(hole), length: 10_000, mode: [.punchHole, .keepSize])
                            expected[index].punch(hole, 10_000)
                            // And what it still shares copied (its bytes unchanged).
                            if round % 10 == 4 { try fs.fallocate(clone, offset: 0, length: 64 << 10, mode: [.unshareRange, .keepSize]) }
                        } else {
                            // Overwritten in the middle of the shared blocks.
                            let offset = ((round * 29 + index) % 48) * 4096
                            let piece = Array(data[0..<(8 << 10)])
                            let count = try piece.withUnsafeBytes { try fs.write(clone, offset: UInt64(offset), $0) }
                            expected[index].write(Array(piece[0..<count]), at: offset)
                            if round % 3 == 0 { try fs.writeback(try fs.inode(clone)) }
                            // Preallocated past the end (KEEP_SIZE: the size and bytes stay).
                            if round % 5 == 0 { try fs.fallocate(clone, offset: 300_000, length: 64 << 10, mode: [.keepSize]) }
                            // A range of the shared blocks zeroed (its blocks unshared, unwritten).
                            if round % 4 == 1 {
                                let zeroed = ((round * 13 + index) % 40) * 4096 + 300
                                try fs.fallocate(clone, offset: UInt64(zeroed), length: 20_000, mode: [.zeroRange, .keepSize])
                                expected[index].punch(zeroed, 20_000)
                            }
                            // A block inserted and collapsed again: the map shifted up and back
                            // over blocks the other clones share and lower.
                            if round % 6 == 3 {
                                let at = UInt64((round * 7) % 32) * 4096
                                try fs.fallocate(clone, offset: at, length: 4096, mode: [.insertRange])
                                try fs.fallocate(clone, offset: at, length: 4096, mode: [.collapseRange])
                            }
                        }
                    }
                } catch {
                    outcome.fail("clone \(index): \(error)")
                }
            }
        }
        XCTAssertEqual(try outcome.syncsWhileWritingBack(fs, thenWaitsFor: group, seconds: 120), .success)
        XCTAssertEqual(outcome.all, [])
        try volume.remount()
        XCTAssertEqual(try volume.read(source, original.count, at: 0), original, "the source")
        for (index, clone) in clones.enumerated() {
            let bytes = expected[index].bytes
            XCTAssertEqual(try fs.getattr(clone).size, UInt64(bytes.count), "clone \(index)'s size")
            XCTAssertEqual(try volume.read(clone, bytes.count, at: 0), bytes, "clone \(index)")
        }
        try volume.unmountAndCheck()
    }

    /// Writers of several files at once and writeback of them (their transactions shared), with
    /// commits, checkpoints, creates and truncates (exclusive) in between, on a volume small enough that reservations
    /// run out: every byte written reads back, and fsck finds the space accounting whole.
    func testConcurrentWritersKeepSpaceAndDataWhole() throws {
        let volume = try TestVolume(blockSize: 4096, size: 12 << 20)
        let fs = volume.fs!
        let files = try (0..<3).map { try volume.create("w\($0)") }
        let outcome = LockOutcome()
        let group = DispatchGroup()
        let written = (0..<3).map { _ in Written() }
        for (index, file) in files.enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let data = pattern(48 << 10, seed: UInt64(index + 1))
                for round in 0..<120 {
                    let offset = UInt64((round * 37) % 1100) * 4096
                    do {
                        let count = try data.withUnsafeBytes { try fs.write(file, offset: offset, $0) }
                        written[index].add(offset, count)
                        // A short write returns what fit: the rest was refused for space.
                        if count < data.count { written[index].noteSpaceRanOut() }
                    } catch Errno.noSpace {
                        written[index].noteSpaceRanOut()
                        continue
                    } catch {
                        outcome.fail("writer \(index): \(error)")
                        return
                    }
                }
            }
        }
        // Writeback of all of them meanwhile, as the flusher does (its transactions shared too).
        var spaceRanOut = 0
        try outcome.whileWritingBack(fs, spaceMayRunOut: true) {
            for round in 0..<40 {
                if round % 4 == 0 { try fs.sync() }
                if round % 8 == 0 { try fs.journal.checkpoint() }
                do {
                    let scratch = try volume.create("s\(round)")
                    defer { fs.release(scratch) }
                    try volume.write(scratch, pattern(8192, seed: 99), at: 0)
                    _ = try fs.setattr(scratch, AttributeChanges(size: 0))
                    try fs.unlink(parent: FileSystem.rootInode, name: Array("s\(round)".utf8))
                    fs.forget(scratch, count: 1)
                } catch Errno.noSpace {
                    spaceRanOut += 1
                }
            }
            XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        }
        XCTAssertEqual(outcome.all, [])
        // The volume is small enough that writes were refused (ENOSPC, or short) on the way.
        XCTAssertGreaterThan(spaceRanOut + written.reduce(0) { $0 + $1.spaceRanOut }, 0)
        try volume.remount()
        for (index, file) in files.enumerated() {
            let data = pattern(48 << 10, seed: UInt64(index + 1))
            for (offset, count) in written[index].ranges.suffix(1) {
                XCTAssertEqual(try volume.read(file, count, at: offset), Array(data[0..<count]), "writer \(index)")
            }
        }
        try volume.unmountAndCheck()
    }
}

extension InodeLocksTests {
    /// Releases and forgets (under the inode's own lock) racing the unlinks of the same files:
    /// whichever comes last frees each inode, once, and none is left behind.
    func testReleasesAndForgetsRacingUnlinksFreeEveryInode() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let before = fs.metadata.withLock { fs.metadata.inodeCount }
        let outcome = LockOutcome()
        for round in 0..<200 {
            let name = Array("f\(round)".utf8)
            let ino = try fs.create(parent: FileSystem.rootInode, name: name, mode: 0o644, flags: O_RDWR, owner: .root).ino
            try pattern(8192, seed: UInt64(round)).withUnsafeBytes { _ = try fs.write(ino, offset: 0, $0) }
            let group = DispatchGroup()
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do { try fs.unlink(parent: FileSystem.rootInode, name: name) } catch { outcome.fail("unlink: \(error)") }
            }
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                fs.release(ino)
                fs.forget(ino, count: 1)
            }
            XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
            if fs.metadata.inodes[ino] != nil { outcome.fail("inode \(ino) was not freed") }
        }
        XCTAssertEqual(outcome.all, [])
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.inodeCount }, before)
        try volume.unmountAndCheck()
    }
}

/// What one writer wrote, in order.
private final class Written: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [(UInt64, Int)] = []
    private var refused = 0
    func add(_ offset: UInt64, _ count: Int) { lock.withLock { all.append((offset, count)) } }
    func noteSpaceRanOut() { lock.withLock { refused += 1 } }
    var ranges: [(UInt64, Int)] { lock.withLock { all } }
    var spaceRanOut: Int { lock.withLock { refused } }
}
