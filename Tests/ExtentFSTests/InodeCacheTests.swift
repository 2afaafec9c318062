import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// The inode table is a cache over the newest durable checkpoint (issue 9, InodeCache.swift):
/// mount holds only what it needs, clean inodes are let go under the budget (here 0: every one
/// that may go, goes) and read back exactly as they were; what was deleted never comes back; the
/// kernel's lookup counts survive being let go.
final class InodeCacheTests: XCTestCase {
    private func volume(blockSize: Int = 4096) throws -> TestVolume {
        let volume = try TestVolume(blockSize: blockSize, size: 128 << 20)
        volume.options.metadataCacheBytes = 0
        try volume.remount()
        return volume
    }

    /// What a path should show: the test's own record of the tree it built.
    private struct Expected: Equatable {
        var mode: UInt32
        var nlink: UInt32
        var size: UInt64
        var data: [UInt8]
        var xattr: [UInt8]?
        var target: [UInt8]?
    }

    private func build(_ volume: TestVolume) throws -> [String: Expected] {
        var expected: [String: Expected] = [:]
        let fs = volume.fs!
        for d in 0..<4 {
            let directory = try fs.mkdir(parent: FileSystem.rootInode, name: Array("d\(d)".utf8), mode: 0o755, owner: .root).ino
            expected["d\(d)"] = Expected(mode: ExtentFSCore.FileType.directory.rawValue | 0o755, nlink: 2, size: 0, data: [], xattr: nil, target: nil)
            for f in 0..<25 {
                let ino = try volume.create("f\(f)", in: directory, mode: 0o600 + UInt32(f % 8))
                let data = pattern(f * 1500 % 9000, seed: UInt64(d * 100 + f))
                if !data.isEmpty { try volume.write(ino, data, at: 0) }
                let value = Array("value \(d) \(f)".utf8)
                try fs.setxattr(ino, name: Array("user.test".utf8), value: value, flags: [])
                expected["d\(d)/f\(f)"] = Expected(mode: ExtentFSCore.FileType.regular.rawValue | (0o600 + UInt32(f % 8)), nlink: 1,
                                                   size: UInt64(data.count), data: data, xattr: value, target: nil)
            }
            let target = Array("f\(d)".utf8)
            _ = try fs.symlink(parent: directory, name: Array("link".utf8), target: target, owner: .root)
            expected["d\(d)/link"] = Expected(mode: ExtentFSCore.FileType.symlink.rawValue | 0o777, nlink: 1, size: UInt64(target.count), data: [], xattr: nil, target: target)
        }
        return expected
    }

    private func resolve(_ fs: FileSystem, _ path: String) throws -> FileAttributes {
        var attributes = try fs.getattr(FileSystem.rootInode)
        for part in path.split(separator: "/") {
            attributes = try fs.lookup(parent: attributes.ino, name: Array(part.utf8))
        }
        return attributes
    }

    private func verify(_ fs: FileSystem, _ expected: [String: Expected], _ context: String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        for (path, want) in expected {
            let attributes = try resolve(fs, path)
            var got = Expected(mode: attributes.mode, nlink: attributes.nlink, size: attributes.type == .directory ? 0 : attributes.size,
                               data: [], xattr: nil, target: nil)
            switch attributes.type {
            case .regular:
                try fs.read(attributes.ino, offset: 0, count: Int(attributes.size)) { got.data = Array($0) }
                got.xattr = try? fs.getxattr(attributes.ino, name: Array("user.test".utf8))
            case .symlink:
                got.target = try fs.readlink(attributes.ino)
            default:
                break
            }
            XCTAssertEqual(got, want, "\(path), \(context)", file: file, line: line)
        }
        var names: Set<String> = []
        try fs.readdir(FileSystem.rootInode, after: 0, plus: true) { entry, attributes in
            XCTAssertNotNil(attributes, "readdirplus attributes of \(entry.ino), \(context)", file: file, line: line)
            names.insert(String(decoding: entry.name, as: UTF8.self))
            return true
        }
        XCTAssertEqual(names, Set(expected.keys.filter { !$0.contains("/") }).union([".", ".."]), "root entries, \(context)", file: file, line: line)
    }

    private func held(_ fs: FileSystem) -> (held: Int, count: UInt64, loads: Int, evictions: Int) {
        fs.metadata.withLock {
            (fs.metadata.inodes.count, fs.metadata.inodeCount, fs.metadata.cacheState.loads, fs.metadata.cacheState.evictions)
        }
    }

    /// Mount holds the root alone; every inode reads back whole (attributes, data, xattrs, symlink
    /// targets, entries); metadata changes to inodes read back (chmod, rename, link, unlink) are
    /// checkpointed, let go and read back again; a remount and fsck agree.
    func testInodesLetGoReadBackAsTheyWere() throws {
        for blockSize in [1024, 4096, 65536] {
            let volume = try volume(blockSize: blockSize)
            var expected = try build(volume)
            let total = UInt64(expected.count + 1)
            try volume.remount()
            var state = held(volume.fs)
            XCTAssertEqual(state.held, 1, "bs \(blockSize): mount holds the root alone")
            XCTAssertEqual(state.count, total, "bs \(blockSize): inode count")
            XCTAssertEqual(volume.fs.statistics().freeInodes, volume.fs.geometry.maxInodes - total, "bs \(blockSize): statfs")
            try verify(volume.fs, expected, "bs \(blockSize), read back after a remount")
            XCTAssertGreaterThanOrEqual(held(volume.fs).loads, expected.count, "bs \(blockSize): loads")

            let fs = volume.fs!
            for d in 0..<4 {
                let directory = try resolve(fs, "d\(d)").ino
                for f in stride(from: 0, to: 25, by: 3) {
                    let ino = try fs.lookup(parent: directory, name: Array("f\(f)".utf8)).ino
                    _ = try fs.setattr(ino, AttributeChanges(mode: 0o640))
                    expected["d\(d)/f\(f)"]!.mode = ExtentFSCore.FileType.regular.rawValue | 0o640
                }
                try fs.rename(parent: directory, name: Array("f1".utf8), newParent: FileSystem.rootInode, newName: Array("moved\(d)".utf8), flags: [])
                expected["moved\(d)"] = expected.removeValue(forKey: "d\(d)/f1")
                try fs.unlink(parent: directory, name: Array("f2".utf8))
                expected.removeValue(forKey: "d\(d)/f2")
                let linked = try fs.lookup(parent: directory, name: Array("f4".utf8)).ino
                _ = try fs.link(linked, newParent: FileSystem.rootInode, newName: Array("hard\(d)".utf8))
                expected["d\(d)/f4"]!.nlink = 2
                expected["hard\(d)"] = expected["d\(d)/f4"]
            }
            try fs.sync()
            try fs.journal.checkpoint()
            state = held(fs)
            XCTAssertGreaterThan(state.evictions, 0, "bs \(blockSize): clean inodes were let go")
            XCTAssertLessThan(state.held, Int(state.count), "bs \(blockSize): not everything is held")
            try verify(fs, expected, "bs \(blockSize), changed, checkpointed and read back")
            try volume.unmountAndCheck()
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            try verify(volume.fs, expected, "bs \(blockSize), after another remount")
        }
    }

    /// A file the kernel holds (lookup count 1), let go, then unlinked: it stays (an orphan) until
    /// the kernel forgets it, then goes with its blocks.
    func testLookupCountsOutliveBeingLetGo() throws {
        let volume = try volume()
        let fs = volume.fs!
        let ino = try volume.create("held")
        fs.release(ino)  // create opened it and counted a lookup: the kernel lets both go
        fs.forget(ino, count: 1)
        try fs.fallocate(ino, offset: 0, length: 1 << 20, mode: [])
        try fs.sync()
        try fs.journal.checkpoint()
        let freeBefore = fs.statistics().freeBlocks
        XCTAssertEqual(try fs.lookup(parent: FileSystem.rootInode, name: Array("held".utf8)).ino, ino)
        try fs.journal.checkpoint()
        XCTAssertNil(fs.metadata.withLock { fs.metadata.inodes[ino] }, "a clean inode the kernel holds is let go")
        try fs.unlink(parent: FileSystem.rootInode, name: Array("held".utf8))
        try fs.sync()
        XCTAssertEqual(try fs.getattr(ino).nlink, 0, "unlinked, still held by the kernel's lookup")
        XCTAssertLessThanOrEqual(fs.statistics().freeBlocks, freeBefore, "its blocks are still in use")
        fs.forget(ino, count: 1)
        try fs.sync()
        XCTAssertEqual(errno { _ = try fs.getattr(ino) }, .noSuchFileOrDirectory, "gone once forgotten")
        XCTAssertGreaterThan(fs.statistics().freeBlocks, freeBefore, "its blocks are free")
        try volume.unmountAndCheck()
    }

    /// The lookup counts kept for inodes let go are bounded: past the limit the kernel is asked
    /// to let go of inodes (here a stand-in kernel that forgets what it is asked about, except
    /// one file it keeps using), down to half the limit; a kernel that keeps them all is not
    /// asked again until the count has grown by a quarter of the limit more. Every count stays
    /// exact.
    func testLookupCountsOfInodesLetGoAreBounded() throws {
        let volume = try volume()
        let fs = volume.fs!
        fs.flusher.stop()  // the test asks when the flusher would, so that nothing races it
        let directory = try fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
        let limit = fs.metadata.withLock { fs.metadata.cacheState.lookupRecordLimit }
        let files = limit * 2
        var numbers: [InodeNumber] = []
        for index in 0..<files {
            let ino = try volume.create("f\(index)", in: directory)
            fs.release(ino)
            fs.forget(ino, count: 1)
            numbers.append(ino)
        }
        try fs.sync()
        try fs.journal.checkpoint()
        let kept = numbers[7]
        let kernel = StandInKernel()
        fs.setKernelInodePruner { [weak fs] inodes in
            let forgets = kernel.asked(inodes)
            for ino in inodes where forgets && ino != kept { fs?.forget(ino, count: 1) }
        }
        func lookUpAll() throws {
            for index in 0..<files { _ = try fs.lookup(parent: directory, name: Array("f\(index)".utf8)) }
        }
        func records() -> Int { fs.metadata.withLock { fs.metadata.cacheState.keptLookupRecords } }

        try lookUpAll()
        let recorded = records()
        XCTAssertGreaterThanOrEqual(recorded, files, "every file let go keeps its count")
        fs.pruneKernelInodes()
        XCTAssertEqual(kernel.askedCount, recorded - limit / 2)
        XCTAssertLessThanOrEqual(records(), limit / 2 + 1, "down to half the limit (the file in use may stay)")
        XCTAssertNotNil(fs.metadata.withLock { fs.metadata.cacheState.keptLookups(of: kept) }, "the file in use keeps its count")

        // A kernel that lets nothing go: asked once past the limit, then not at once again.
        kernel.forgets = false
        try lookUpAll()
        fs.pruneKernelInodes()
        XCTAssertGreaterThan(kernel.askedCount, 0, "asked when past the limit")
        kernel.askedCount = 0
        for index in 0..<(limit / 8) { _ = try fs.lookup(parent: directory, name: Array("f\(index)".utf8)) }
        fs.pruneKernelInodes()
        XCTAssertEqual(kernel.askedCount, 0, "not asked again at once")

        // The kernel's forgets bring every count to zero: none was lost or made up.
        fs.setKernelInodePruner(nil)
        for ino in numbers + [directory] {
            let count = fs.metadata.withLock { fs.metadata.cacheState.keptLookups(of: ino) ?? fs.metadata.inodes[ino]?.lookupCount ?? 0 }
            if count > 0 { fs.forget(ino, count: count) }
        }
        XCTAssertEqual(records(), 0)
        try volume.unmountAndCheck()
    }

    /// Prune asks about the inodes let go longest ago: not about one forgotten, read back, or let
    /// go again since (then it is among the newest), and each at most once.
    func testPruneAsksAboutTheOldestFirst() {
        var state = InodeCacheState(budgetBytes: 1024 * 640)
        let limit = state.lookupRecordLimit
        var wanted = false
        for ino in 1...InodeNumber(limit + 100) {
            state.keepLookups(1, of: ino)
            if state.noteLookupRecordKept() { wanted = true }
        }
        XCTAssertTrue(wanted, "an ask is wanted past the limit")
        state.forget(3, count: 1)
        XCTAssertNil(state.keptLookups(of: 3))
        XCTAssertEqual(state.takeLookups(of: 5), 1)
        state.keepLookups(2, of: 5)
        state.keepLookups(1, of: 6)
        let candidates = state.takePruneCandidates()
        XCTAssertEqual(candidates.count, state.keptLookupRecords - limit / 2)
        XCTAssertEqual(Array(candidates.prefix(5)), [1, 2, 4, 7, 8])
        XCTAssertEqual(Set(candidates).count, candidates.count, "each asked about once")
        XCTAssertEqual(candidates.last, InodeNumber(candidates.count + 3))
        XCTAssertEqual(state.keptLookups(of: 5), 2)
        XCTAssertEqual(state.takePruneCandidates(), [], "asked once per want")
        // Forgetting every count leaves none, and the order does not outgrow the counts.
        for ino in 1...InodeNumber(limit + 100) { state.forget(ino, count: state.keptLookups(of: ino) ?? 0) }
        XCTAssertEqual(state.keptLookupRecords, 0)
    }

    /// An inode deleted after the checkpoint that holds it is never read back from that checkpoint:
    /// not while the deletion is only in memory, logged, or in a checkpoint being written.
    func testDeletedInodesDoNotComeBack() throws {
        let volume = try volume()
        let fs = volume.fs!
        var numbers: [InodeNumber] = []
        for index in 0..<20 {
            numbers.append(try volume.create("gone\(index)"))
            fs.release(numbers[index])  // create opened it, and counted a lookup:
            fs.forget(numbers[index], count: 1)  // as the kernel does once it lets the file go
        }
        try fs.sync()
        try fs.journal.checkpoint()
        for (index, ino) in numbers.enumerated() {
            try fs.unlink(parent: FileSystem.rootInode, name: Array("gone\(index)".utf8))
            XCTAssertEqual(errno { _ = try fs.getattr(ino) }, .noSuchFileOrDirectory, "in memory")
        }
        try fs.sync()
        for ino in numbers { XCTAssertEqual(errno { _ = try fs.getattr(ino) }, .noSuchFileOrDirectory, "logged") }
        try fs.journal.checkpoint()
        for ino in numbers { XCTAssertEqual(errno { _ = try fs.getattr(ino) }, .noSuchFileOrDirectory, "checkpointed") }
        XCTAssertEqual(held(fs).count, 1)
        try volume.unmountAndCheck()
    }

    /// After a crash, mount holds what the log replayed (and the root), reads the rest on demand,
    /// and counts every inode.
    func testMountAfterACrashHoldsWhatReplayChanged() throws {
        let volume = try volume()
        var expected = try build(volume)
        try volume.fs.sync()
        try volume.fs.journal.checkpoint()
        let fs = volume.fs!
        let directory = try resolve(fs, "d0").ino
        for f in 0..<5 {
            let ino = try fs.lookup(parent: directory, name: Array("f\(f)".utf8)).ino
            _ = try fs.setattr(ino, AttributeChanges(mode: 0o604))
            expected["d0/f\(f)"]!.mode = ExtentFSCore.FileType.regular.rawValue | 0o604
        }
        try fs.unlink(parent: directory, name: Array("f9".utf8))
        expected.removeValue(forKey: "d0/f9")
        _ = try volume.create("new", in: directory)
        expected["d0/new"] = Expected(mode: ExtentFSCore.FileType.regular.rawValue | 0o644, nlink: 1, size: 0, data: [], xattr: nil, target: nil)
        try fs.sync()
        let copy = volume.directory + "/crash.img"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: volume.image, toPath: copy)
        defer { unlink(copy) }
        let crashed = try FileSystem.mount(image: copy, options: volume.options)
        let state = held(crashed)
        XCTAssertLessThanOrEqual(state.held, 10, "mount holds what replay changed and the root")
        XCTAssertEqual(state.count, UInt64(expected.count + 1), "inode count after replay")
        try verify(crashed, expected, "after a crash")
        try crashed.unmount()
        XCTAssertEqual(try Volume.check(image: copy), [])
    }
}

extension InodeCacheTests {
    /// While a checkpoint is written (paused before its superblock), the tree the table reads from
    /// lacks what it writes: an inode it changed is not let go and read back stale, and one it
    /// deletes is not read back at all, however many other inodes are read meanwhile.
    func testNothingIsReadBackFromTheTreeACheckpointInFlightReplaces() throws {
        let volume = try volume()
        let fs = volume.fs!
        var numbers: [InodeNumber] = []
        for index in 0..<30 {
            let ino = try volume.create("f\(index)")
            fs.release(ino)
            fs.forget(ino, count: 1)
            numbers.append(ino)
        }
        try fs.sync()
        try fs.journal.checkpoint()
        _ = try fs.setattr(numbers[0], AttributeChanges(mode: 0o611))
        try fs.unlink(parent: FileSystem.rootInode, name: Array("f1".utf8))
        let paused = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        fs.pauseHook = { point in
            guard point == .checkpointBeforeSuperblock else { return }
            paused.signal()
            resume.wait()
        }
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? fs.journal.checkpoint()
            done.signal()
        }
        paused.wait()
        for ino in numbers[2...] { _ = try fs.getattr(ino) }  // loads, each letting others go
        XCTAssertEqual(try fs.getattr(numbers[0]).mode & 0o7777, 0o611, "changed by the checkpoint in flight")
        XCTAssertEqual(errno { _ = try fs.getattr(numbers[1]) }, .noSuchFileOrDirectory, "deleted by the checkpoint in flight")
        fs.pauseHook = nil
        resume.signal()
        done.wait()
        for ino in numbers[2...] { _ = try fs.getattr(ino) }
        XCTAssertEqual(try fs.getattr(numbers[0]).mode & 0o7777, 0o611, "after the checkpoint")
        XCTAssertEqual(errno { _ = try fs.getattr(numbers[1]) }, .noSuchFileOrDirectory, "after the checkpoint")
        try volume.unmountAndCheck()
    }
}

/// What the kernel was asked to let go of, for a test's pruner.
private final class StandInKernel: @unchecked Sendable {
    private let lock = NSLock()
    private var _askedCount = 0
    private var _forgets = true
    var askedCount: Int {
        get { lock.withLock { _askedCount } }
        set { lock.withLock { _askedCount = newValue } }
    }
    var forgets: Bool {
        get { lock.withLock { _forgets } }
        set { lock.withLock { _forgets = newValue } }
    }
    /// Notes the ask; whether the kernel forgets what it was asked about.
    func asked(_ inodes: [InodeNumber]) -> Bool {
        lock.withLock {
            _askedCount += inodes.count
            return _forgets
        }
    }
}
