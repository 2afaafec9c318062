import ExtentFSCore
import XCTest
import SystemPackage
@testable import ExtentFS

/// Metadata is charged to space as it changes (Inode/MetadataSpace.swift): a request whose
/// metadata would not fit fails with ENOSPC, and a commit never learns first. Before, the charge
/// was checked against what the last commit had counted: the security issue's 1,500 values of
/// 64 KiB in 0.2 s on a 64 MiB volume passed, the next commit failed, the volume shut down and
/// every change since mount, of every user, was lost (seen again here with the old charge: the
/// flood and full-volume tests below ended in "recording transaction 1 by checkpoints failed").
final class MetadataChargeTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Someone else's fsynced file, which a flood by another user must not take down with it.
    private func bystander(_ volume: TestVolume) throws -> (InodeNumber, [UInt8]) {
        let ino = try volume.create("bystander")
        let data = pattern(100_000, seed: 11)
        try volume.write(ino, data, at: 0)
        try volume.fs.fsync(ino, dataOnly: false)
        return (ino, data)
    }

    /// Runs `step` until it fails, at most `limit` times; it must fail with ENOSPC (or
    /// `alsoAccepted`), and before the limit unless `mustRunOut` is false; then a commit must
    /// succeed. Returns how many steps succeeded.
    @discardableResult
    private func flood(_ volume: TestVolume, _ what: String, limit: Int = 200_000, mustRunOut: Bool = true, alsoAccepted: [Errno] = [],
                       _ step: (Int) throws -> Void, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        var done = 0
        while done < limit {
            do {
                try step(done)
            } catch let error as Errno {
                XCTAssertTrue(error == .noSpace || alsoAccepted.contains(error), "\(what) #\(done): \(error)", file: file, line: line)
                break
            }
            done += 1
        }
        if mustRunOut { XCTAssertLessThan(done, limit, "\(what) never ran out of space", file: file, line: line) }
        XCTAssertNoThrow(try volume.fs.sync(), "\(what): the commit after the flood", file: file, line: line)
        return done
    }

    func testAnXattrFloodFailsAtTheRequestAndLosesNothing() throws {
        let volume = try TestVolume(size: 64 << 20)
        let (other, otherData) = try bystander(volume)
        let value = [UInt8](repeating: 5, count: ExtendedAttributes.maxValueBytes)
        var files: [InodeNumber] = []
        let set = try flood(volume, "setxattr of 64 KiB") { index in
            let file = try volume.create("x\(index)")
            files.append(file)
            try volume.fs.setxattr(file, name: self.bytes("user.v"), value: value, flags: [])
        }
        XCTAssertGreaterThan(set, 100)
        let statistics = volume.fs.statistics()
        XCTAssertLessThan(statistics.availableBlocks * statistics.blockSize, 1 << 20, "df shows the xattrs' space as used")
        try volume.unmountAndCheck()
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try volume.read(other, otherData.count, at: 0), otherData)
        for file in files.prefix(set) { XCTAssertEqual(try volume.fs.getxattr(file, name: bytes("user.v")), value) }
        try volume.unmountAndCheck()
    }

    /// The same flood from eight threads at once, each on files of its own: setxattr runs in
    /// transactions shared on its file, and a charge counts as pending until its change counts
    /// itself (Metadata.withMetadataCharged), so the checks of requests running together do not
    /// all pass on the same room. Every thread stops at ENOSPC, and the commits after have room.
    func testAnXattrFloodFromManyThreadsFailsAtTheRequests() throws {
        let volume = try TestVolume(size: 64 << 20)
        let (other, otherData) = try bystander(volume)
        let value = [UInt8](repeating: 6, count: ExtendedAttributes.maxValueBytes)
        let threads = 8
        let files = try (0..<threads).map { thread in try (0..<200).map { try volume.create("t\(thread)-\($0)") } }
        try volume.fs.sync()
        let results = NSLock()
        var stored: [(InodeNumber, Bool)] = []
        var unexpected: [String] = []
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for file in files[thread] {
                do {
                    try volume.fs.setxattr(file, name: self.bytes("user.v"), value: value, flags: [])
                    results.withLock { stored.append((file, true)) }
                } catch Errno.noSpace {
                    return
                } catch {
                    results.withLock { unexpected.append("\(error)") }
                    return
                }
            }
            results.withLock { unexpected.append("thread \(thread) never ran out of space") }
        }
        XCTAssertEqual(unexpected, [])
        XCTAssertGreaterThan(stored.count, 100)
        XCTAssertNoThrow(try volume.fs.sync(), "the commit after the flood")
        XCTAssertNoThrow(try volume.fs.journal.checkpoint(), "the checkpoint after the flood")
        try volume.unmountAndCheck()
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try volume.read(other, otherData.count, at: 0), otherData)
        for (file, _) in stored { XCTAssertEqual(try volume.fs.getxattr(file, name: bytes("user.v")), value) }
        try volume.unmountAndCheck()
    }

    /// Between a setxattr's charge and its change (another file's setxattr may run then: both
    /// are shared transactions), the room it took is in the reserve the next check sees.
    func testAChargeCountsUntilItsChangeDoes() throws {
        let volume = try TestVolume(size: 64 << 20)
        let first = try volume.create("first"), second = try volume.create("second")
        let value = [UInt8](repeating: 3, count: ExtendedAttributes.maxValueBytes)
        let reserve = { volume.fs.metadata.allocatorLock.withLock { volume.fs.metadata.freeSpace.metadataReserve } }
        let before = reserve()
        let gate = Gate(.metadataChargedBeforeChange)
        gate.install(on: volume.fs)
        let paused = Background { try volume.fs.setxattr(first, name: self.bytes("user.v"), value: value, flags: []) }
        XCTAssertTrue(gate.waitForArrival())
        // Two checkpoint copies' worth of 64 KiB, three times over (MetadataSpace.reserveBlocks).
        let blocks = UInt64(ExtendedAttributes.maxValueBytes / volume.blockSize)
        XCTAssertGreaterThanOrEqual(reserve() - before, 3 * 2 * blocks, "the paused change's charge is held")
        let other = Background { try volume.fs.setxattr(second, name: self.bytes("user.w"), value: [1, 2, 3], flags: []) }
        XCTAssertNoThrow(try other.join(seconds: 5), "another file's setxattr waited for the paused one")
        gate.release()
        try paused.join()
        if !other.finished { _ = try? other.join() }
        XCTAssertEqual(volume.fs.metadata.space.pendingBytes, 0)
        XCTAssertGreaterThanOrEqual(reserve() - before, 3 * 2 * blocks, "the change counts itself")
        try volume.unmountAndCheck()
    }

    /// A punch paused between its charge and its change (the pages dropped, the extents not yet
    /// unmapped) holds what it may add as pending, and gives it back when done.
    func testAPunchHoldsItsChargeUntilItsChange() throws {
        let volume = try TestVolume(size: 64 << 20)
        let file = try volume.create("file")
        try volume.write(file, pattern(100_000, seed: 4), at: 0)
        try volume.fs.sync()
        let gate = Gate(.punchAfterDroppingPages)
        gate.install(on: volume.fs)
        let punch = Background { try volume.fs.fallocate(file, offset: 8192, length: 16384, mode: [.punchHole, .keepSize]) }
        XCTAssertTrue(gate.waitForArrival())
        XCTAssertEqual(volume.fs.metadata.space.pendingBytes, FileSystem.splitBytes)
        gate.release()
        try punch.join()
        XCTAssertEqual(volume.fs.metadata.space.pendingBytes, 0)
        try volume.unmountAndCheck()
    }

    func testSymlinkTargetsAreCharged() throws {
        let volume = try TestVolume(size: 16 << 20)
        let (other, otherData) = try bystander(volume)
        let target = [UInt8](repeating: 0x61, count: FileSystem.maxSymlinkLength)
        let made = try flood(volume, "symlink with a 4095-byte target") { index in
            _ = try volume.fs.symlink(parent: FileSystem.rootInode, name: self.bytes("s\(index)"), target: target, owner: .root)
        }
        XCTAssertLessThan(made, Int(volume.fs.geometry.maxInodes) - 10, "space, not the inode limit, stopped the symlinks")
        try volume.unmountAndCheck()
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try volume.read(other, otherData.count, at: 0), otherData)
        XCTAssertEqual(try volume.fs.readlink(try volume.lookup("s\(made - 1)").ino), target)
        try volume.unmountAndCheck()
    }

    /// Hard links have no inode of their own to run out of, and a rename to a longer name adds
    /// nothing but bytes: on a volume full of data, both must stop with ENOSPC.
    func testLinksAndLongerNamesAreCharged() throws {
        let volume = try TestVolume(size: 16 << 20)
        let (other, otherData) = try bystander(volume)
        let linked = try volume.create("linked")
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: bytes("links"), mode: 0o755, owner: .root).ino
        for index in 0..<1000 {
            _ = try volume.fs.mknod(parent: FileSystem.rootInode, name: bytes("r\(index)"), mode: ExtentFSCore.FileType.fifo.rawValue | 0o644, rdev: 0, owner: .root)
        }
        try fill(volume)
        try flood(volume, "link with a 255-byte name", limit: 5000) { index in
            let name = self.bytes(String(format: "%06d", index) + String(repeating: "l", count: 249))
            _ = try volume.fs.link(linked, newParent: directory, newName: name)
        }
        try flood(volume, "rename to a 255-byte name", limit: 1000) { index in
            let name = self.bytes(String(format: "%06d", index) + String(repeating: "r", count: 249))
            try volume.fs.rename(parent: FileSystem.rootInode, name: self.bytes("r\(index)"), newParent: FileSystem.rootInode,
                                 newName: name, flags: [])
        }
        try volume.unmountAndCheck()
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try volume.read(other, otherData.count, at: 0), otherData)
        try volume.unmountAndCheck()
    }

    /// Clone, insert, punch and zero add extents and reference counts without taking data
    /// blocks: on a volume whose data has taken every block, each must stop with ENOSPC while
    /// the commit still has room. Punch gives space back and may dip into the cleanup pool.
    func testOperationsThatSplitExtentsStopWhenTheVolumeIsFull() throws {
        for blockSize in [1024, 4096] {
            let volume = try TestVolume(blockSize: blockSize, size: 16 << 20)
            let b = UInt64(blockSize)
            let (other, otherData) = try bystander(volume)
            let source = try volume.create("source")
            try volume.write(source, pattern(64 * blockSize, seed: 3), at: 0)
            let clones = try volume.create("clones")
            let inserts = try volume.create("inserts")
            try volume.write(inserts, pattern(64 * blockSize, seed: 4), at: 0)
            let shared = try volume.create("shared")
            try volume.write(shared, pattern(512 * blockSize, seed: 5), at: 0)
            try volume.fs.sync()
            let sharedCopy = try volume.create("shared-copy")
            XCTAssertEqual(try volume.fs.clone(from: shared, sourceOffset: 0, to: sharedCopy, destinationOffset: 0, length: 0), 512 * b)
            try fill(volume)

            try flood(volume, "bs \(blockSize): clone one block to every other block", limit: 5000) { index in
                _ = try volume.fs.clone(from: source, sourceOffset: UInt64(index % 64) * b, to: clones,
                                        destinationOffset: UInt64(2 * index) * b, length: b)
            }
            try flood(volume, "bs \(blockSize): insert a block into the data", limit: 63) { index in
                // Each lands inside the data, shifted up by the ones before: one more extent each.
                try volume.fs.fallocate(inserts, offset: UInt64(2 * (index + 1)) * b, length: b, mode: .insertRange)
            }
            try flood(volume, "bs \(blockSize): punch every other shared block", limit: 256, mustRunOut: false) { index in
                try volume.fs.fallocate(sharedCopy, offset: UInt64(2 * index) * b, length: b, mode: [.punchHole, .keepSize])
            }
            try flood(volume, "bs \(blockSize): zero every other shared block", limit: 256) { index in
                try volume.fs.fallocate(shared, offset: UInt64(2 * index + 1) * b, length: b, mode: [.zeroRange, .keepSize])
            }
            try volume.unmountAndCheck()
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            XCTAssertEqual(try volume.read(other, otherData.count, at: 0), otherData, "bs \(blockSize)")
            XCTAssertEqual(try volume.read(source, 64 * blockSize, at: 0), pattern(64 * blockSize, seed: 3), "bs \(blockSize)")
            try volume.unmountAndCheck()
        }
    }

    /// Writes until the volume takes no more, committing in between so freed space is reusable.
    private func fill(_ volume: TestVolume) throws {
        let filler = try volume.create("filler")
        var offset: UInt64 = 0
        let chunk = [UInt8](repeating: 0xEE, count: 1 << 20)
        for _ in 0..<3 {
            while true {
                do {
                    offset += UInt64(try volume.write(filler, chunk, at: offset))
                } catch Errno.noSpace {
                    break
                }
            }
            try volume.fs.sync()
        }
    }

    /// The running count is what an encoding of every inode takes (delayed extents aside), so
    /// the reserve follows the metadata exactly, without encoding anything.
    func testTheRunningCountIsTheEncodedSize() throws {
        let volume = try TestVolume(blockSize: 1024)
        let file = try volume.create("file")
        for index in 0..<40 { try volume.write(file, [UInt8(index)], at: UInt64(index) * 3072) }
        try volume.fs.setxattr(file, name: bytes("user.a"), value: [1, 2, 3], flags: [])
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: bytes("dir"), mode: 0o755, owner: .root).ino
        for index in 0..<30 { _ = try volume.fs.mknod(parent: directory, name: bytes("entry-\(index)"), mode: ExtentFSCore.FileType.fifo.rawValue | 0o600, rdev: 0, owner: .root) }
        _ = try volume.fs.symlink(parent: directory, name: bytes("link"), target: bytes("../file"), owner: .root)
        try volume.fs.rename(parent: directory, name: bytes("entry-3"), newParent: FileSystem.rootInode, newName: bytes("moved-with-a-longer-name"), flags: [])
        try volume.fs.unlink(parent: directory, name: bytes("entry-4"))
        try volume.fs.sync()  // writeback: no delayed extents left
        let metadata = volume.fs.metadata
        metadata.withLock {
            var total = 0
            for inode in metadata.inodes.values {
                var writer = ByteWriter()
                CheckpointCodec.encode(InodeImage(inode), into: &writer)
                XCTAssertEqual(inode.encodedSizeEstimate, writer.bytes.count, "inode \(inode.ino) (\(inode.type))")
                total += writer.bytes.count
            }
            XCTAssertEqual(metadata.space.inodeBytes, total)
            XCTAssertEqual(metadata.space.referenceEntries, metadata.referenceCounts.entries.count)
        }
        try volume.unmountAndCheck()
    }
}
