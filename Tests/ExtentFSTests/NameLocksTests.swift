import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// Issue 9, requirement 4: making a name (create, mknod, mkdir, symlink) is a transaction shared
/// on its directory, so names made in different directories are made together, alongside the
/// other shared transactions; the inode numbers, the table and the committed tree they share
/// are Metadata.tableLock's.
final class NameLocksTests: XCTestCase {
    private func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testMakingANameDoesNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let kept = try volume.fs.mkdir(parent: FileSystem.rootInode, name: name("kept"), mode: 0o755, owner: .root).ino
        for index in 0..<50 { _ = try volume.create("old\(index)", in: kept) }
        // Read back from the tree, `kept` holds none of its entries: a name is looked up there.
        try volume.remount()
        let fs = volume.fs!
        _ = try fs.getattr(kept)
        XCTAssertEqual(fs.metadata.inodes[kept]?.directory?.isComplete, false)
        let inodesBefore = fs.metadata.withLock { fs.metadata.inodeCount }
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                let file = try fs.create(parent: kept, name: self.name("new"), mode: 0o644, flags: O_RDWR, owner: .root).ino
                _ = try fs.mkdir(parent: kept, name: self.name("sub"), mode: 0o755, owner: .root)
                _ = try fs.mknod(parent: FileSystem.rootInode, name: self.name("fifo"), mode: UInt32(S_IFIFO) | 0o644, rdev: 0, owner: .root)
                _ = try fs.symlink(parent: kept, name: self.name("link"), target: self.name("new"), owner: .root)
                if errno(of: { _ = try fs.create(parent: kept, name: self.name("old7"), mode: 0o644, flags: 0, owner: .root) }) != .fileExists {
                    outcome.fail("a name the tree holds was made again")
                }
                if errno(of: { _ = try fs.mkdir(parent: kept, name: self.name("new"), mode: 0o755, owner: .root) }) != .fileExists {
                    outcome.fail("a name just made was made again")
                }
                fs.release(file)
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a create, mkdir, mknod or symlink waited for a shared transaction on another inode")
        XCTAssertEqual(outcome.all, [])
        XCTAssertEqual(fs.metadata.withLock { fs.metadata.inodeCount }, inodesBefore + 4)
        try volume.remount()
        XCTAssertEqual(try volume.lookup("new", in: kept).type, .regular)
        XCTAssertEqual(try volume.lookup("sub", in: kept).nlink, 2)
        XCTAssertEqual(try volume.lookup("kept").nlink, 3)
        XCTAssertEqual(try volume.fs.readlink(volume.lookup("link", in: kept).ino), name("new"))
        XCTAssertEqual(try volume.lookup("fifo").type, .fifo)
        try volume.unmountAndCheck()
    }

    func testRemovingLinkingAndRenamingDoNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let kept = try volume.fs.mkdir(parent: FileSystem.rootInode, name: name("kept"), mode: 0o755, owner: .root).ino
        for index in 0..<50 { _ = try volume.create("old\(index)", in: kept) }
        _ = try volume.fs.mkdir(parent: kept, name: name("empty"), mode: 0o755, owner: .root)
        // Directories that move to other parents.
        let sub1 = try volume.fs.mkdir(parent: kept, name: name("sub1"), mode: 0o755, owner: .root).ino
        _ = try volume.create("inside", in: sub1)
        let sub2 = try volume.fs.mkdir(parent: kept, name: name("sub2"), mode: 0o755, owner: .root).ino
        let deep = try volume.fs.mkdir(parent: sub2, name: name("deep"), mode: 0o755, owner: .root).ino
        let other = try volume.fs.mkdir(parent: FileSystem.rootInode, name: name("other"), mode: 0o755, owner: .root).ino
        let data = pattern(10_000, seed: 3)
        try volume.write(try volume.create("data", in: kept), data, at: 0)
        try volume.remount()
        let fs = volume.fs!
        // Both directories and the inodes named are in the table, `kept` partial: the names are
        // looked up in the tree.
        let old3 = try volume.lookup("old3", in: kept).ino
        let dataFile = try volume.lookup("data", in: kept).ino
        _ = try volume.lookup("old4", in: kept)
        _ = try volume.lookup("empty", in: kept)
        for renamed in ["old5", "old6", "old7", "old8", "old9", "old10"] { _ = try volume.lookup(renamed, in: kept) }
        let old10 = try volume.lookup("old10", in: kept).ino
        let old8 = try volume.lookup("old8", in: kept).ino
        let old9 = try volume.lookup("old9", in: kept).ino
        XCTAssertEqual(fs.metadata.inodes[kept]?.directory?.isComplete, false)
        let inodesBefore = fs.metadata.withLock { fs.metadata.inodeCount }
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                _ = try fs.link(dataFile, newParent: FileSystem.rootInode, newName: self.name("linked"))
                try fs.unlink(parent: kept, name: self.name("data"))
                try fs.unlink(parent: kept, name: self.name("old4"))
                try fs.rmdir(parent: kept, name: self.name("empty"))
                if errno(of: { try fs.unlink(parent: kept, name: self.name("old4")) }) != .noSuchFileOrDirectory {
                    outcome.fail("a name removed was removed again")
                }
                if errno(of: { _ = try fs.link(old3, newParent: kept, newName: self.name("old5")) }) != .fileExists {
                    outcome.fail("a link took a name the tree holds")
                }
                // Renames in one directory: to a new name, over another (whose inode the kernel
                // still references, so it is not freed here), and an exchange.
                try fs.rename(parent: kept, name: self.name("old5"), newParent: kept, newName: self.name("renamed"), flags: [])
                try fs.rename(parent: kept, name: self.name("old6"), newParent: kept, newName: self.name("old7"), flags: [])
                try fs.rename(parent: kept, name: self.name("old8"), newParent: kept, newName: self.name("old9"), flags: [.exchange])
                // Across directories: a file moves, and a directory stays (exclusive, checked below).
                try fs.rename(parent: kept, name: self.name("old10"), newParent: FileSystem.rootInode, newName: self.name("moved"), flags: [])
                // Directories to other parents, read back from the tree for it: one moves, one is
                // exchanged with another, one may not move below itself.
                try fs.rename(parent: kept, name: self.name("sub1"), newParent: FileSystem.rootInode, newName: self.name("sub1moved"), flags: [])
                if errno(of: { try fs.rename(parent: kept, name: self.name("sub2"), newParent: deep, newName: self.name("loop"), flags: []) }) != .invalidArgument {
                    outcome.fail("a directory moved below itself")
                }
                try fs.rename(parent: kept, name: self.name("sub2"), newParent: FileSystem.rootInode, newName: self.name("other"), flags: [.exchange])
                // A whiteout left behind (overlayfs's).
                try fs.rename(parent: kept, name: self.name("old11"), newParent: FileSystem.rootInode, newName: self.name("upper"), flags: [.whiteout])
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a link, unlink, rmdir or rename (a directory's to another parent too) waited for a shared transaction on another inode")
        XCTAssertEqual(outcome.all, [])
        // The kernel references the lookups took end with the mount: old4, empty and the old7
        // renamed over are freed.
        try volume.remount()
        XCTAssertEqual(volume.fs.metadata.withLock { volume.fs.metadata.inodeCount }, inodesBefore - 3 + 1)  // and a whiteout made
        XCTAssertEqual(errno(of: { _ = try volume.lookup("old5", in: kept) }), .noSuchFileOrDirectory)
        XCTAssertEqual(errno(of: { _ = try volume.lookup("old6", in: kept) }), .noSuchFileOrDirectory)
        XCTAssertEqual(try volume.lookup("old8", in: kept).ino, old9)
        XCTAssertEqual(try volume.lookup("old9", in: kept).ino, old8)
        XCTAssertEqual(try volume.lookup("moved").ino, old10)
        XCTAssertEqual(errno(of: { _ = try volume.lookup("old10", in: kept) }), .noSuchFileOrDirectory)
        XCTAssertEqual(try volume.read(try volume.lookup("linked").ino, data.count, at: 0), data)
        XCTAssertEqual(try volume.lookup("linked").nlink, 1)
        XCTAssertEqual(errno(of: { _ = try volume.lookup("data", in: kept) }), .noSuchFileOrDirectory)
        XCTAssertEqual(errno(of: { _ = try volume.lookup("empty", in: kept) }), .noSuchFileOrDirectory)
        // kept lost empty and sub1 and exchanged sub2 for other; the root gained sub1moved.
        XCTAssertEqual(try volume.lookup("kept").nlink, 3)
        XCTAssertEqual(try volume.fs.getattr(FileSystem.rootInode).nlink, 5)
        XCTAssertEqual(try volume.lookup("sub1moved").ino, sub1)
        XCTAssertEqual(try volume.lookup("inside", in: sub1).type, .regular)
        XCTAssertEqual(try volume.lookup("..", in: sub1).ino, FileSystem.rootInode)
        XCTAssertEqual(try volume.lookup("other").ino, sub2)
        XCTAssertEqual(try volume.lookup("..", in: sub2).ino, FileSystem.rootInode)
        XCTAssertEqual(try volume.lookup("sub2", in: kept).ino, other)
        XCTAssertEqual(try volume.lookup("..", in: other).ino, kept)
        XCTAssertEqual(try volume.lookup("deep", in: sub2).ino, deep)
        XCTAssertEqual(try volume.lookup("upper").type, .regular)
        XCTAssertEqual(try volume.lookup("old11", in: kept).mode, FileType.characterDevice.rawValue)
        try volume.unmountAndCheck()
    }

    /// Threads make, link, rename and remove names in directories of their own (read back from the
    /// tree, holding none of their entries), two of them race to make and then to remove or
    /// rename the same names in one directory, and another writes and changes attributes meanwhile: every name is made
    /// or removed once, every inode has a number of its own, and the volume checks clean after a
    /// remount.
    func testNamesMadeAndRemovedTogetherInManyDirectoriesAreEachChangedOnce() throws {
        let volume = try TestVolume(blockSize: 4096, size: 128 << 20)
        var directories: [InodeNumber] = []
        for index in 0..<4 {
            let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: name("d\(index)"), mode: 0o755, owner: .root).ino
            for old in 0..<40 { _ = try volume.create("old\(old)", in: directory) }
            directories.append(directory)
        }
        let busy = try volume.create("busy")
        try volume.remount()
        let fs = volume.fs!
        let allDirectories = directories
        let perThread = 160
        let outcome = LockOutcome()
        let names = Names()
        let group = DispatchGroup()
        func run(_ body: @escaping @Sendable () throws -> Void) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do { try body() } catch { outcome.fail("\(error)") }
            }
        }
        for (index, directory) in directories.enumerated() {
            run {
                for item in 0..<perThread {
                    let itemName = self.name("n\(item)")
                    let attributes: FileAttributes
                    switch item % 4 {
                    case 0: attributes = try fs.mkdir(parent: directory, name: itemName, mode: 0o755, owner: .root)
                    case 1: attributes = try fs.symlink(parent: directory, name: itemName, target: self.name("t\(item)"), owner: .root)
                    case 2: attributes = try fs.mknod(parent: directory, name: itemName, mode: UInt32(S_IFIFO) | 0o600, rdev: 0, owner: .root)
                    default:
                        attributes = try fs.create(parent: directory, name: itemName, mode: 0o644, flags: O_RDWR, owner: .root)
                        fs.release(attributes.ino)
                    }
                    names.add(attributes.ino, in: directory, itemName)
                    if item % 10 == 0, errno(of: { _ = try fs.create(parent: directory, name: self.name("old\(index)"), mode: 0o644, flags: 0, owner: .root) }) != .fileExists {
                        outcome.fail("old\(index) was made again in \(directory)")
                    }
                    // Now and then a name made a while ago is removed, or linked into the root.
                    guard item >= 8 else { continue }
                    let earlier = item - 8
                    let earlierName = self.name("n\(earlier)")
                    switch earlier % 16 {
                    case 0:
                        try fs.rmdir(parent: directory, name: earlierName)
                        names.remove(earlierName, in: directory)
                    case 2, 6:
                        try fs.unlink(parent: directory, name: earlierName)
                        names.remove(earlierName, in: directory)
                    case 3:
                        let linkName = self.name("l\(index)-\(earlier)")
                        let ino = try fs.link(try fs.lookup(parent: directory, name: earlierName).ino, newParent: FileSystem.rootInode, newName: linkName).ino
                        names.add(ino, in: FileSystem.rootInode, linkName)
                    case 5:
                        let newName = self.name("m\(earlier)")
                        try fs.rename(parent: directory, name: earlierName, newParent: directory, newName: newName, flags: [])
                        names.rename(earlierName, to: newName, in: directory)
                    case 7:
                        try fs.unlink(parent: directory, name: self.name("old\(10 + earlier / 16)"))
                    case 4, 9:
                        // Into the next thread's directory: moves between two directories both
                        // ways at once, their locks taken in one order (4: a directory's, under
                        // Metadata.directoryMoveLock too).
                        let next = allDirectories[(index + 1) % allDirectories.count]
                        let newName = self.name("x\(index)-\(earlier)")
                        let ino = try fs.lookup(parent: directory, name: earlierName).ino
                        try fs.rename(parent: directory, name: earlierName, newParent: next, newName: newName, flags: [])
                        names.remove(earlierName, in: directory)
                        names.add(ino, in: next, newName)
                    default: break
                    }
                }
            }
        }
        // Two threads race for the same names in one directory: each is made by one of them.
        let contested = directories[0]
        let raced = perThread
        for _ in 0..<2 {
            run {
                for item in 0..<raced {
                    let itemName = self.name("race\(item)")
                    do {
                        let ino = try fs.create(parent: contested, name: itemName, mode: 0o644, flags: O_RDWR, owner: .root).ino
                        fs.release(ino)
                        names.add(ino, in: contested, itemName)
                    } catch Errno.fileExists {
                        names.noteRefused()
                    }
                }
            }
        }
        // Listings (READDIRPLUS, a page at a time, as the kernel asks) of directories whose
        // names change meanwhile: each name once a listing, the names never removed in each, and
        // a lookup reference for each entry listed with attributes, let go as the kernel would.
        for listed in directories[1...2] {
            run {
                for _ in 0..<40 {
                    var seen = Set<[UInt8]>()
                    var cookie: UInt64 = 0
                    var done = false
                    while !done {
                        var page = 0
                        done = true
                        try fs.readdir(listed, after: cookie, plus: true) { entry, attributes in
                            guard page < 20 else {
                                done = false
                                return false
                            }
                            page += 1
                            cookie = entry.nextCookie
                            if !seen.insert(entry.name).inserted { outcome.fail("\(listed): listed \(entry.name) twice") }
                            if let attributes, entry.name != [0x2E], entry.name != [0x2E, 0x2E] {
                                if attributes.ino != entry.ino { outcome.fail("\(listed): attributes of another inode") }
                                fs.forget(entry.ino, count: 1)
                            }
                            return true
                        }
                    }
                    for kept in 20..<40 where !seen.contains(self.name("old\(kept)")) { outcome.fail("\(listed): old\(kept) not listed") }
                }
            }
        }
        run {
            for round in 0..<200 {
                _ = try pattern(4096, seed: UInt64(round)).withUnsafeBytes { try fs.write(busy, offset: UInt64(round % 16) * 4096, $0) }
                _ = try fs.setattr(busy, AttributeChanges(mode: 0o600 | UInt32(round % 2) * 0o040))
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        XCTAssertEqual(names.refusals, raced, "each contested name was refused to one of the two")
        // Then they race to remove half of those names and to rename the others: each is
        // removed or renamed by one of them.
        for _ in 0..<2 {
            run {
                for item in 0..<raced {
                    let itemName = self.name("race\(item)")
                    do {
                        if item % 2 == 0 {
                            try fs.unlink(parent: contested, name: itemName)
                            names.remove(itemName, in: contested)
                        } else {
                            let newName = self.name("moved\(item)")
                            try fs.rename(parent: contested, name: itemName, newParent: contested, newName: newName, flags: [.noReplace])
                            names.rename(itemName, to: newName, in: contested)
                        }
                    } catch Errno.noSuchFileOrDirectory {
                        names.noteRefused()
                    }
                }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        XCTAssertEqual(outcome.all, [])
        XCTAssertEqual(names.refusals, raced + raced, "each contested removal or rename was refused to one of the two")
        let all = names.all
        XCTAssertEqual(all.count, directories.count * (perThread - 3 * perThread / 16 + perThread / 16) + raced / 2)
        try volume.remount()
        for (ino, directory, itemName) in all {
            XCTAssertEqual(try volume.fs.lookup(parent: directory, name: itemName).ino, ino)
        }
        var listed = 0
        try volume.fs.readdir(contested, after: 0, plus: false) { _, _ in
            listed += 1
            return true
        }
        let madeThere = all.filter { $0.directory == contested }.count
        XCTAssertEqual(listed, 2 + 40 - perThread / 16 + madeThere)
        try volume.unmountAndCheck()
    }

    /// Two directories moved at once, each into the other's subtree: each move walks up its new
    /// parent's ancestors, and two walks at once must not each pass and together cut both off
    /// from the root in a loop (`Metadata.directoryMoveLock`). The first move is stopped after its
    /// walk while the second is tried: the second must wait, then be refused (EINVAL). Checked:
    /// without the lock, the second completes at once and the loop forms.
    func testDirectoryMovesAcrossParentsNeverMakeALoop() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        // Each in a parent of its own, so that the two moves share no inode (and no
        // transactionLock): pa/a/a1/a2/a3 and pb/b/b1/b2/b3.
        func chain(_ top: String) throws -> (parent: InodeNumber, top: InodeNumber, bottom: InodeNumber) {
            let parent = try fs.mkdir(parent: FileSystem.rootInode, name: name("p\(top)"), mode: 0o755, owner: .root).ino
            let first = try fs.mkdir(parent: parent, name: name(top), mode: 0o755, owner: .root).ino
            var bottom = first
            for level in 1...3 { bottom = try fs.mkdir(parent: bottom, name: name("\(top)\(level)"), mode: 0o755, owner: .root).ino }
            return (parent, first, bottom)
        }
        let a = try chain("a")
        let b = try chain("b")
        let walked = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        let paused = LockedCounter()
        fs.pauseHook = { point in
            guard point == .renameAfterAncestorWalk, paused.increment() == 1 else { return }
            walked.signal()
            resume.wait()
        }
        let outcome = LockOutcome()
        let first = DispatchGroup()
        first.enter()
        Thread.detachNewThread {
            defer { first.leave() }
            do { try fs.rename(parent: a.parent, name: self.name("a"), newParent: b.bottom, newName: self.name("a"), flags: []) } catch {
                outcome.fail("a into b's subtree: \(error)")
            }
        }
        XCTAssertEqual(walked.wait(timeout: .now() + 10), .success)
        let second = DispatchGroup()
        second.enter()
        Thread.detachNewThread {
            defer { second.leave() }
            if errno(of: { try fs.rename(parent: b.parent, name: self.name("b"), newParent: a.bottom, newName: self.name("b"), flags: []) }) != .invalidArgument {
                outcome.fail("b moved into a's subtree while a was moving into b's")
            }
        }
        XCTAssertEqual(second.wait(timeout: .now() + 1), .timedOut, "the second move did not wait for the first")
        resume.signal()
        XCTAssertEqual(first.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(second.wait(timeout: .now() + 10), .success)
        fs.pauseHook = nil
        XCTAssertEqual(outcome.all, [])
        // a is in b's subtree, b still in its parent.
        XCTAssertEqual(try fs.lookup(parent: b.top, name: name("..")).ino, b.parent)
        XCTAssertEqual(try fs.lookup(parent: a.top, name: name("..")).ino, b.bottom)
        try volume.remount()
        XCTAssertEqual(try volume.lookup("a", in: b.bottom).ino, a.top)
        XCTAssertEqual(try volume.lookup("b", in: b.parent).ino, b.top)
        XCTAssertEqual(try volume.lookup("pa").nlink, 2)
        XCTAssertEqual(try volume.lookup("pb").nlink, 3)
        try volume.unmountAndCheck()
    }
}

/// The names the threads made and have not removed, and how many contested changes were refused.
private final class Names: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [(ino: InodeNumber, directory: InodeNumber, name: [UInt8])] = []
    private var refused = 0
    func add(_ ino: InodeNumber, in directory: InodeNumber, _ name: [UInt8]) { lock.withLock { names.append((ino, directory, name)) } }
    func remove(_ name: [UInt8], in directory: InodeNumber) {
        lock.withLock { names.removeAll { $0.directory == directory && $0.name == name } }
    }
    func rename(_ name: [UInt8], to newName: [UInt8], in directory: InodeNumber) {
        lock.withLock {
            guard let index = names.firstIndex(where: { $0.directory == directory && $0.name == name }) else { return }
            names[index].name = newName
        }
    }
    func noteRefused() { lock.withLock { refused += 1 } }
    var all: [(ino: InodeNumber, directory: InodeNumber, name: [UInt8])] { lock.withLock { names } }
    var refusals: Int { lock.withLock { refused } }
}

private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    /// The count after this one.
    @discardableResult
    func increment() -> Int { lock.withLock { count += 1; return count } }
    var value: Int { lock.withLock { count } }
}
