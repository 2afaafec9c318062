import Foundation
import ExtentFSCore
import SystemPackage
import XCTest
@testable import ExtentFS

/// Format version 5: the tree lists the blocks files use, the inode count and the orphans, and
/// the log carries their changes, so that mount reads the internal nodes, object 0 and the root
/// and no other inode (issue 9); fsck checks each list against what it summarizes; a version 4
/// image converts at its first checkpoint.
final class VolumeItemsTests: XCTestCase {
    /// 4 directories of 1,000 files with a block of data each.
    private func populatedVolume(blockSize: Int = 4096) throws -> TestVolume {
        let volume = try TestVolume(blockSize: blockSize, size: 256 << 20)
        for d in 0..<4 {
            let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d\(d)".utf8), mode: 0o755, owner: .root).ino
            for f in 0..<1_000 {
                let ino = try volume.create("f\(f)", in: directory)
                try volume.write(ino, pattern(100, seed: UInt64(d * 1000 + f)), at: 0)
                volume.fs.release(ino)
                volume.fs.forget(ino, count: 1)
            }
        }
        return volume
    }

    /// Free space as mount builds it from the lists, and as it is derived from every extent.
    private func freeSpaceBothWays(_ image: String) throws -> (fromLists: FreeSpace, fromExtents: FreeSpace) {
        let store = try BackingStore(path: image, writable: false)
        let choice = try VolumeLoader.readSuperblock(store)
        let fromLists = try VolumeLoader.load(store, choice: choice, cache: nil, onDemand: true)
        let fromExtents = try VolumeLoader.load(store, choice: choice, cache: nil, onDemand: false)
        XCTAssertNotNil(fromLists.fileBlocks, "the lists were read")
        XCTAssertNil(fromExtents.fileBlocks, "everything was read")
        return (Metadata(superblock: choice.superblock, loaded: fromLists).freeSpace,
                Metadata(superblock: choice.superblock, loaded: fromExtents).freeSpace)
    }

    func testMountReadsWhatItNeedsNotEveryInode() throws {
        let volume = try populatedVolume()
        try volume.fs.unmount()
        volume.fs = nil
        let store = try BackingStore(path: volume.image, writable: false)
        let superblock = try VolumeLoader.readSuperblock(store).superblock
        let treeBytes = try VolumeLoader.openTree(store, superblock: superblock).report.nodes * Int(superblock.blockSize)
        store.unlock()
        let counter = ReadCounter()
        volume.options.storeInterceptor = counter
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        let read = counter.lock.withLock { counter.bytes }
        print("mount read \(read) bytes of a \(treeBytes)-byte metadata tree")
        XCTAssertLessThan(read, treeBytes / 4, "mount reads a fraction of the tree")
        XCTAssertEqual(volume.fs.metadata.withLock { volume.fs.metadata.inodes.count }, 1, "the root alone is held")
        XCTAssertEqual(volume.fs.statistics().freeInodes, volume.fs.geometry.maxInodes - 4005, "inode count")
        let directory = try volume.lookup("d2").ino
        let file = try volume.fs.lookup(parent: directory, name: Array("f777".utf8)).ino
        XCTAssertEqual(try volume.read(file, 100, at: 0), pattern(100, seed: 2777))
        try volume.unmountAndCheck()
        let (fromLists, fromExtents) = try freeSpaceBothWays(volume.image)
        XCTAssertEqual(fromLists.runs, fromExtents.runs, "free space")
        XCTAssertEqual(fromLists.fileBlocks, fromExtents.fileBlocks, "file blocks")
        XCTAssertGreaterThanOrEqual(fromLists.fileBlocks.blockCount, 4_000)
    }

    /// An open file unlinked and checkpointed is listed as an orphan; after a crash, mount finds
    /// it in the list (without reading every inode) and frees it.
    func testOrphansListedInTheTreeAreFreedAfterACrash() throws {
        let volume = try populatedVolume()
        let fs = volume.fs!
        let ino = try volume.create("open")
        try volume.write(ino, pattern(3 * volume.blockSize, seed: 9), at: 0)
        try fs.unlink(parent: FileSystem.rootInode, name: Array("open".utf8))
        try fs.sync()
        try fs.journal.checkpoint()
        let freeWithOrphan = fs.statistics().freeBlocks
        let copy = volume.directory + "/crash.img"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: volume.image, toPath: copy)
        defer { unlink(copy) }
        XCTAssertTrue(try Volume.check(image: copy).isEmpty)
        let crashed = try FileSystem.mount(image: copy, options: volume.options)
        XCTAssertEqual(errno { _ = try crashed.getattr(ino) }, .noSuchFileOrDirectory, "the orphan was freed at mount")
        try crashed.sync()
        XCTAssertGreaterThan(crashed.statistics().freeBlocks, freeWithOrphan, "with its blocks")
        try crashed.unmount()
        XCTAssertEqual(try Volume.check(image: copy), [])
    }

    /// Each list damaged (checksums resealed): fsck names it; mount does not trap, and refuses a
    /// file block list that claims a tree node.
    func testFsckChecksEachListAgainstWhatItSummarizes() throws {
        let cases: [(what: String, reason: String, craft: (inout [TreeItem], Superblock) throws -> Void)] = [
            ("a file block run left out", "blocks files use", { items, _ in
                items.remove(at: try XCTUnwrap(items.firstIndex { $0.key.object == 0 && $0.key.kind == MetadataTree.Kind.fileBlocks }))
            }),
            ("an inode count one too many", "inode count", { items, _ in
                let index = try XCTUnwrap(items.firstIndex { $0.key == MetadataTree.volumeCountsKey })
                var reader = ByteReader(items[index].value)
                var writer = ByteWriter(capacity: 16)
                writer.u64(try reader.u64() + 1)
                writer.u64(try reader.u64())
                items[index].value = writer.bytes
            }),
            ("a linked file listed as an orphan", "listed as an orphan", { items, _ in
                let file = try XCTUnwrap(items.last { $0.key.kind == MetadataTree.Kind.fileExtent }).key.object
                items.append(TreeItem(key: MetadataTree.orphanKey(file), value: []))
            }),
        ]
        for (what, reason, craft) in cases {
            let volume = try populatedVolume()
            try volume.fs.unmount()
            volume.fs = nil
            var crafting = try ImageCrafting(image: volume.image)
            var items = try crafting.items()
            try craft(&items, crafting.superblock)
            try crafting.writeItems(items)
            let problems = try Volume.check(image: volume.image)
            XCTAssertTrue(problems.contains { $0.contains(reason) }, "fsck on \(what): \(problems)")
            var options = MountOptions()
            options.readOnly = true
            if let fs = try? FileSystem.mount(image: volume.image, options: options) { try fs.unmount() }
        }
        // A file block run over the tree's own nodes would let data be written over metadata.
        let volume = try populatedVolume()
        try volume.fs.unmount()
        volume.fs = nil
        var crafting = try ImageCrafting(image: volume.image)
        var items = try crafting.items()
        items.removeAll { $0.key.object == 0 && $0.key.kind == MetadataTree.Kind.fileBlocks }
        let everything = BlockRun(start: crafting.superblock.firstAllocatableBlock,
                                  count: crafting.superblock.blockCount - crafting.superblock.firstAllocatableBlock)
        items.append(TreeItem(key: MetadataTree.fileBlocksKey(everything.start), value: MetadataTree.encodeRun(everything)))
        try crafting.writeItems(items)
        XCTAssertThrowsError(try FileSystem.mount(image: volume.image)) { error in
            XCTAssertTrue("\(error)".contains("also listed as a file block"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    /// A version 4 image (a tree without the lists) mounts by reading every inode once, and its
    /// first checkpoint writes the lists: version 5, fsck clean, mounted without the scan after.
    /// Version 4 (no lists, images of the layout before version 6), version 6 (no directory
    /// totals, no name index) and version 8 (a name index of cookies) trees convert at mount:
    /// fsck clean, and the converted tree serves lookups by name without reading a directory's
    /// entries.
    func testAVersion4ImageConverts() throws {
        for version: UInt32 in [4, 6, 8] {
            let volume = try populatedVolume(blockSize: 1024)
            try volume.fs.unmount()
            volume.fs = nil
            var crafting = try ImageCrafting(image: volume.image)
            try crafting.writeTree(try crafting.contents(), version: version)
            XCTAssertEqual(try Volume.check(image: volume.image), [], "the version \(version) image")
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            try volume.unmountAndCheck()
            let superblock = try VolumeLoader.readSuperblock(try BackingStore(path: volume.image, writable: false)).superblock
            XCTAssertEqual(superblock.version, Superblock.currentVersion)
            let (fromLists, fromExtents) = try freeSpaceBothWays(volume.image)
            XCTAssertEqual(fromLists.runs, fromExtents.runs, "free space after the conversion from version \(version)")
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            XCTAssertEqual(volume.fs.metadata.withLock { volume.fs.metadata.inodes.count }, 1)
            let directory = try volume.lookup("d3").ino
            let file = try volume.fs.lookup(parent: directory, name: Array("f5".utf8)).ino
            XCTAssertEqual(try volume.read(file, 100, at: 0), pattern(100, seed: 3005))
            let held = try volume.fs.metadata.withLock { try volume.fs.metadata.inode(directory).directory!.heldCount }
            XCTAssertEqual(held, 0, "the converted directory is read by name, version \(version)")
            try volume.unmountAndCheck()
        }
    }
}
