import XCTest
import SystemPackage
import ExtentFSCore
@testable import ExtentFS

/// Checkpoints write what changed into the metadata tree (format version 4): the tree read back
/// holds exactly the metadata in memory, a checkpoint after a small change writes a few nodes
/// whatever the volume holds, and images of version 3 convert.
final class TreeCheckpointTests: XCTestCase {
    /// The newest superblock's tree, read back from the image, against the metadata in memory.
    private func assertTreeMatchesMemory(_ volume: TestVolume, _ context: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try volume.fs.journal.checkpoint()
        let superblock = volume.fs.metadata.withLock { volume.fs.metadata.superblock }
        let stored = try VolumeLoader.openTree(volume.fs.store, superblock: superblock).tree.loadAll(cache: nil)
        // Memory holds some inodes (the inode table is a cache): every inode the tree holds is
        // asked for, read back where memory does not hold it, and the table's count is all of them.
        let metadata = volume.fs.metadata
        // A directory's entries as a list, wherever they are (a directory read back from the tree
        // holds only its changes; Metadata.forEachEntry merges).
        func entries(_ inode: ExtentFS.Inode) throws -> [String] {
            guard inode.type == .directory else { return [] }
            var listed: [String] = []
            try metadata.forEachEntry(of: inode, after: 0, before: .max) { name, entry in
                listed.append("\(name) \(entry.ino) \(entry.type) \(entry.cookie)")
                return true
            }
            return listed
        }
        var storedEntries: [InodeNumber: [String]] = [:]
        for inode in stored.inodes { storedEntries[inode.ino] = try entries(inode) }
        let memory = try metadata.withLock { () throws -> (InodeNumber, [InodeImage], ReferenceCounts) in
            XCTAssertEqual(metadata.inodeCount, UInt64(stored.inodes.count), "inode count, \(context)", file: file, line: line)
            XCTAssertTrue(Set(metadata.inodes.keys).isSubset(of: stored.inodes.map(\.ino)), "held inodes, \(context)", file: file, line: line)
            for inode in stored.inodes where inode.type == .directory {
                XCTAssertEqual(try entries(try metadata.inode(inode.ino)), storedEntries[inode.ino], "directory \(inode.ino)'s entries, \(context)",
                               file: file, line: line)
            }
            return (metadata.nextInode, try stored.inodes.map { InodeImage(try metadata.inode($0.ino)) }, metadata.referenceCounts)
        }
        XCTAssertEqual(stored.nextInode, memory.0, "next inode, \(context)", file: file, line: line)
        XCTAssertEqual(stored.referenceCounts.entries, memory.2.entries, "reference counts, \(context)", file: file, line: line)
        func encoded(_ image: InodeImage) -> [UInt8] {
            var writer = ByteWriter()
            var image = image
            image.directory = image.directory?.strippedOfEntries  // compared above
            CheckpointCodec.encode(image, into: &writer)
            return writer.bytes
        }
        let storedImages = Dictionary(uniqueKeysWithValues: stored.inodes.map { ($0.ino, encoded(InodeImage($0))) })
        let memoryImages = Dictionary(uniqueKeysWithValues: memory.1.map { ($0.ino, encoded($0)) })
        XCTAssertEqual(Set(storedImages.keys), Set(memoryImages.keys), "inode numbers, \(context)", file: file, line: line)
        for (ino, bytes) in memoryImages where storedImages[ino] != bytes {
            XCTFail("inode \(ino) differs in the tree, \(context)", file: file, line: line)
        }
    }

    /// Random creates, writes, clones, punches, collapses and inserts of ranges, truncates,
    /// xattrs and unlinks at each block size, a checkpoint after every few: the tree always reads
    /// back as memory (each file's extents exactly, as the checkpoints rewrote their changed ranges). Reference counts are
    /// stored as each checkpoint cut them; loading joins them, so equality checks the cutting.
    func testTheTreeHoldsWhatMemoryHoldsAfterEveryCheckpoint() throws {
        for blockSize in [1024, 4096, 65536] {
            var random = SeededGenerator(seed: UInt64(blockSize))
            let volume = try TestVolume(blockSize: blockSize, size: 128 << 20)
            var files: [InodeNumber] = []
            var names: [InodeNumber: String] = [:]
            for step in 0..<300 {
                switch random.next() % 11 {
                case 0, 1 where files.count < 40:
                    let ino = try volume.create("f\(step)")
                    files.append(ino)
                    names[ino] = "f\(step)"
                case 2 where !files.isEmpty:
                    let file = files[Int(random.next() % UInt64(files.count))]
                    try volume.write(file, pattern(Int(random.next() % 40_000) + 1, seed: UInt64(step)), at: random.next() % 200_000)
                case 3 where files.count >= 2:
                    let source = files[Int(random.next() % UInt64(files.count))]
                    let target = files[Int(random.next() % UInt64(files.count))]
                    let length = try volume.fs.getattr(source).size / UInt64(blockSize) * UInt64(blockSize)
                    if source != target, length > 0 {
                        try volume.fs.sync()
                        _ = try volume.fs.clone(from: source, sourceOffset: 0, to: target,
                                                destinationOffset: random.next() % 8 * UInt64(blockSize), length: length)
                    }
                case 4 where !files.isEmpty:
                    let file = files[Int(random.next() % UInt64(files.count))]
                    try volume.fs.sync()
                    try volume.fs.fallocate(file, offset: random.next() % 16 * UInt64(blockSize), length: UInt64(blockSize) * (1 + random.next() % 4),
                                            mode: [.punchHole, .keepSize])
                case 5 where !files.isEmpty:
                    let file = files[Int(random.next() % UInt64(files.count))]
                    try volume.fs.setxattr(file, name: Array("user.s\(step % 5)".utf8), value: pattern(Int(random.next() % 3000), seed: UInt64(step)), flags: [])
                case 6 where files.count > 5:
                    let index = Int(random.next() % UInt64(files.count))
                    try volume.fs.unlink(parent: FileSystem.rootInode, name: Array(names[files[index]]!.utf8))
                    volume.fs.forget(files[index], count: 1)
                    volume.fs.release(files[index])
                    files.remove(at: index)
                case 7 where !files.isEmpty:
                    // A block or two collapsed or inserted inside the file: every extent after moves.
                    let file = files[Int(random.next() % UInt64(files.count))]
                    let blocks = try volume.fs.getattr(file).size / UInt64(blockSize)
                    if blocks > 4 {
                        let offset = random.next() % (blocks - 3) * UInt64(blockSize)
                        let length = (1 + random.next() % 2) * UInt64(blockSize)
                        try volume.fs.fallocate(file, offset: offset, length: length,
                                                mode: random.next() % 2 == 0 ? .collapseRange : .insertRange)
                    }
                case 8 where !files.isEmpty:
                    let file = files[Int(random.next() % UInt64(files.count))]
                    _ = try volume.fs.setattr(file, AttributeChanges(size: random.next() % 240_000))
                case 9 where !files.isEmpty:
                    // Many one-block extents, so that the changes fall among many leaves.
                    let file = files[Int(random.next() % UInt64(files.count))]
                    let start = random.next() % 64
                    for index in 0..<UInt64(1 + random.next() % 24) {
                        try volume.write(file, pattern(blockSize, seed: UInt64(step) &+ index), at: (start + 2 * index) * UInt64(blockSize))
                    }
                default:
                    try volume.fs.sync()
                }
                if step % 25 == 24 { try assertTreeMatchesMemory(volume, "block size \(blockSize), step \(step)") }
            }
            try volume.remount()
            try assertTreeMatchesMemory(volume, "block size \(blockSize), after a remount")
            try volume.unmountAndCheck()
        }
    }

    /// A checkpoint after one change writes the path to that inode's leaf, not the volume's
    /// metadata: the same few blocks with 100 files as with 5,000.
    func testACheckpointAfterOneChangeWritesAFewNodes() throws {
        var written: [Int: Int] = [:]
        for count in [100, 5_000] {
            let volume = try TestVolume(size: 256 << 20)
            var files: [InodeNumber] = []
            for index in 0..<count { files.append(try volume.create("f\(index)")) }
            try volume.fs.sync()
            try volume.fs.journal.checkpoint()
            let counter = StoreCounter()
            try volume.remount(intercepting: counter)
            try volume.fs.setxattr(files[count / 2], name: Array("user.x".utf8), value: [1], flags: [])
            try volume.fs.journal.force()
            var before = counter.bytes
            try volume.fs.journal.checkpoint()
            written[count] = (counter.bytes - before) / volume.blockSize
            // A name added to the directory of `count` entries: its entry's leaf, its name
            // index leaf (the hash puts it anywhere among the directory's), the new inode's, the
            // directory's image (its times), and their paths to the root.
            _ = try volume.create("one-more")
            try volume.fs.journal.force()
            before = counter.bytes
            try volume.fs.journal.checkpoint()
            written[-count] = (counter.bytes - before) / volume.blockSize
            try volume.unmountAndCheck()
        }
        // The path to the inode's leaf, and (format 10) the leaf of free space by size, at the
        // tree's end (free space by position and the held nodes share object 0's leaf); with
        // 100 files that leaf is object 0's too.
        XCTAssertLessThanOrEqual(written[5_000]!, 7, "blocks a checkpoint wrote after one change among 5,000 files: \(written)")
        XCTAssertLessThanOrEqual(written[5_000]!, written[100]! + 3, "\(written)")
        XCTAssertLessThanOrEqual(written[-5_000]!, 10, "blocks a checkpoint wrote after a create in a directory of 5,000: \(written)")
        XCTAssertLessThanOrEqual(written[-5_000]!, written[-100]! + 5, "\(written)")
    }

    /// A file of 5,000 extents: a checkpoint after one block written into a hole among them, or
    /// one extent punched, writes the leaf that holds those extents and its path, not the map.
    func testACheckpointAfterOneBlockOfAFileOfManyExtentsWritesAFewNodes() throws {
        var written: [String: Int] = [:]
        for count in [100, 5_000] {
            let volume = try TestVolume(size: 256 << 20)
            let bs = UInt64(volume.blockSize)
            let file = try volume.create("fragmented")
            // Every other block: one extent each.
            for index in 0..<UInt64(count) { try volume.write(file, pattern(volume.blockSize, seed: index), at: 2 * index * bs) }
            try volume.fs.sync()
            XCTAssertEqual(volume.fs.metadata.withLock { try! volume.fs.metadata.inode(file).extents.extents.count }, count)
            try volume.fs.journal.checkpoint()
            let counter = StoreCounter()
            try volume.remount(intercepting: counter)
            func checkpointBlocks(_ change: () throws -> Void) throws -> Int {
                try change()
                try volume.fs.sync()
                try volume.fs.journal.force()
                let before = counter.bytes
                try volume.fs.journal.checkpoint()
                return (counter.bytes - before) / volume.blockSize
            }
            written["write \(count)"] = try checkpointBlocks {
                try volume.write(file, pattern(volume.blockSize, seed: 99), at: UInt64(count + 1) * bs)
            }
            written["punch \(count)"] = try checkpointBlocks {
                try volume.fs.fallocate(file, offset: UInt64(count / 2) * bs, length: bs, mode: [.punchHole, .keepSize])
            }
            try assertTreeMatchesMemory(volume, "\(count) extents")
            try volume.unmountAndCheck()
        }
        print("blocks a checkpoint wrote: \(written)")
        for change in ["write", "punch"] {
            XCTAssertLessThanOrEqual(written["\(change) 5000"]!, 8, "blocks a checkpoint wrote after one \(change) in a file of 5,000 extents: \(written)")
            XCTAssertLessThanOrEqual(written["\(change) 5000"]!, written["\(change) 100"]! + 2, "\(written)")
        }
    }

    /// A map changed all over (truncated to nothing, then written again, fragmented) between two
    /// checkpoints: the tree holds the new map and none of the old extents.
    func testAMapChangedAllOverIsWrittenWhole() throws {
        let volume = try TestVolume()
        let bs = UInt64(volume.blockSize)
        let file = try volume.create("file")
        for index in 0..<UInt64(300) { try volume.write(file, pattern(volume.blockSize, seed: index), at: 2 * index * bs) }
        try volume.fs.sync()
        try assertTreeMatchesMemory(volume, "before the truncate")
        _ = try volume.fs.setattr(file, AttributeChanges(size: 0))
        for index in 0..<UInt64(100) { try volume.write(file, pattern(volume.blockSize, seed: 1000 + index), at: 3 * index * bs + 1) }
        try volume.fs.sync()
        try assertTreeMatchesMemory(volume, "after the truncate and the writes")
        try volume.remount()
        try assertTreeMatchesMemory(volume, "after a remount")
        XCTAssertEqual(try volume.read(file, 10, at: 3 * 99 * bs + 1), Array(pattern(volume.blockSize, seed: 1099).prefix(10)))
        try volume.unmountAndCheck()
    }

    /// The inode follows its map's changes: a change in place adds its range; a map replaced
    /// whole, or changed out of the inode's sight, means every extent; the checkpoint's reset
    /// notes no change (no log record, no data change) and leaves the map alone.
    func testTheInodeFollowsTheRangeItsExtentsChangedIn() {
        let inode = Inode(ino: 7, mode: 0o100644, uid: 0, gid: 0, time: Timespec(seconds: 0, nanoseconds: 0), cache: nil)
        XCTAssertNil(inode.checkpointExtentRange, "a new file")
        inode.extents.insert(FileExtent(logical: 10, length: 5, physical: 100, state: .written))
        XCTAssertNil(inode.checkpointExtentRange, "a new file, changed")
        let changes = ChangeSet(running: 1)
        inode.changes = changes
        inode.extentsCheckpointed()
        XCTAssertTrue(changes.isEmpty && !changes.touchesData, "the reset noted a change")
        XCTAssertEqual(inode.checkpointExtentRange, 0..<0)
        // Merges with [10, 15): the merged extent is the change.
        inode.extents.insert(FileExtent(logical: 15, length: 2, physical: 105, state: .written))
        XCTAssertEqual(inode.checkpointExtentRange, 10..<17)
        inode.extents.replace(with: FileExtent(logical: 40, length: 1, physical: 200, state: .unwritten))
        XCTAssertEqual(inode.checkpointExtentRange, 10..<41)
        inode.extentsCheckpointed()
        // Cuts [10, 17) in two: the whole of it changed as the tree stores it.
        inode.extents.remove(from: 12, to: 13)
        XCTAssertEqual(inode.checkpointExtentRange, 10..<17)
        inode.extentsCheckpointed()
        inode.extents.shift(from: 40, by: 5)
        XCTAssertEqual(inode.checkpointExtentRange, 40..<46)
        inode.extentsCheckpointed()
        inode.extents.split(at: 11)
        XCTAssertEqual(inode.checkpointExtentRange, 10..<12)
        inode.extentsCheckpointed()
        inode.extents.remove(from: 100, to: 200)
        XCTAssertEqual(inode.checkpointExtentRange, 0..<0, "nothing was mapped there")
        // The same map assigned back: nothing changed.
        let same = inode.extents
        inode.extents = same
        XCTAssertEqual(inode.checkpointExtentRange, 0..<0)
        // Two changes out of the inode's sight: it cannot know where.
        var copy = inode.extents
        copy.remove(from: 10, to: 11)
        copy.remove(from: 45, to: 46)
        inode.extents = copy
        XCTAssertNil(inode.checkpointExtentRange)
        inode.extentsCheckpointed()
        // A new map, and another inode's.
        inode.extents = ExtentMap()
        XCTAssertNil(inode.checkpointExtentRange)
        let other = Inode(ino: 8, mode: 0o100644, uid: 0, gid: 0, time: Timespec(seconds: 0, nanoseconds: 0), cache: nil)
        other.extents.insert(FileExtent(logical: 0, length: 1, physical: 300, state: .written))
        other.extentsCheckpointed()
        var another = inode.extents
        another.insert(FileExtent(logical: 3, length: 1, physical: 400, state: .written))
        other.extents = another
        XCTAssertNil(other.checkpointExtentRange, "another inode's map, changed once")
    }

    /// An image of version 3 (a whole checkpoint) mounts, converts at its first checkpoint, and
    /// keeps every file; the whole checkpoint's blocks are free once both superblock copies
    /// point at trees.
    func testAVersion3ImageConverts() throws {
        let volume = try TestVolume()
        let file = try volume.create("file")
        try volume.write(file, pattern(20_000, seed: 3), at: 0)
        try volume.fs.setxattr(file, name: Array("user.k".utf8), value: [4, 5], flags: [])
        try volume.fs.unmount()
        volume.fs = nil
        do {
            var crafting = try ImageCrafting(image: volume.image)
            try crafting.writeVersion3(try crafting.contents())
        }
        XCTAssertEqual(try Volume.check(image: volume.image), [])
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        XCTAssertEqual(try volume.read(file, 20_000, at: 0), pattern(20_000, seed: 3))
        try volume.fs.journal.checkpoint()
        try volume.fs.journal.checkpoint()
        try volume.remount()
        let superblock = volume.fs.metadata.withLock { volume.fs.metadata.superblock }
        XCTAssertEqual(superblock.version, Superblock.currentVersion)
        XCTAssertEqual(try volume.read(file, 20_000, at: 0), pattern(20_000, seed: 3))
        XCTAssertEqual(try volume.fs.getxattr(file, name: Array("user.k".utf8)), [4, 5])
        try volume.unmountAndCheck()
    }

    /// A damaged tree node is refused by fsck with one line. Mount reads only the internal nodes
    /// and what it needs: a damaged leaf it does not read gives EIO to whoever reads it.
    func testADamagedTreeNodeIsRefused() throws {
        let volume = try TestVolume()
        for index in 0..<200 { _ = try volume.create("f\(index)") }
        try volume.fs.unmount()
        volume.fs = nil
        let store = try BackingStore(path: volume.image, writable: true)
        let superblock = try VolumeLoader.readSuperblock(store).superblock
        let nodes = try VolumeLoader.openTree(store, superblock: superblock).report.storedAddresses
        XCTAssertGreaterThan(nodes.count, 1)
        let victim = nodes[nodes.count / 2] * UInt64(superblock.blockSize) + 100
        var byte = try store.read(1, at: victim)
        byte[0] ^= 0x40
        try store.write(byte, at: victim)
        try store.flush()
        XCTAssertThrowsError(try Volume.check(image: volume.image)) { error in
            XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            XCTAssertTrue("\(error)".contains("metadata tree"), "\(error)")
        }
        var options = MountOptions()
        options.readOnly = true
        guard let fs = try? FileSystem.mount(image: volume.image, options: options) else { return }
        defer { try? fs.unmount() }
        var failures: [Errno] = []
        for index in 0..<200 {
            do { _ = try fs.lookup(parent: FileSystem.rootInode, name: Array("f\(index)".utf8)) } catch let error as Errno { failures.append(error) }
        }
        XCTAssertTrue(failures.contains(.ioError) && failures.allSatisfy { $0 == .ioError || $0 == .noSuchFileOrDirectory }, "\(failures)")
    }
}
