import ExtentFSCore
import SystemPackage
import XCTest
@testable import ExtentFS

/// Format version 10's free space and held nodes in the tree (MetadataTree+FreeSpace): mount
/// reads no node to find them, they stay exact through checkpoints and remounts (fsck checks
/// them against both trees' nodes), and lists that would let data overwrite a file or a node
/// are refused.
final class FreeSpaceListTests: XCTestCase {
    /// Counts reads at or past the data area: tree nodes (and data, which mount does not read).
    final class NodeReads: BackingStoreInterceptor, @unchecked Sendable {
        let lock = NSLock()
        let firstDataByte: UInt64
        var reads = 0
        init(firstDataByte: UInt64) { self.firstDataByte = firstDataByte }
        func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {}
        func willFlush() throws {}
        func willRead(count: Int, at offset: UInt64) {
            if offset >= firstDataByte { lock.withLock { reads += count } }
        }
    }

    /// A volume of many small files in a tree of hundreds of internal nodes (512-byte blocks):
    /// mount reads its top nodes up to the bound (made 64 here) and no more, where mounts before
    /// version 10 read every internal node of both trees; what it holds as free is what reading
    /// both trees gives.
    func testMountReadsNoNodeToFindFreeSpace() throws {
        let volume = try TestVolume(blockSize: 512, size: 256 << 20)
        for index in 0..<8_000 {
            let ino = try volume.create("file-\(index)")
            if index % 3 == 0 { try volume.write(ino, [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 3_000), at: 0) }
        }
        try volume.fs.unmount()
        volume.fs = nil
        let store = try BackingStore(path: volume.image, writable: false)
        let choice = try VolumeLoader.readSuperblock(store)
        let superblock = choice.superblock
        let opened = try VolumeLoader.openTree(store, superblock: superblock)
        let loaded = try VolumeLoader.load(store, choice: choice, cache: nil)
        var used = loaded.storedVolume!.fileBlocks
        for run in loaded.checkpointRuns { used.insert(run) }
        let expectedFree = superblock.blockCount - superblock.firstAllocatableBlock - used.blockCount
        let counter = NodeReads(firstDataByte: superblock.firstAllocatableBlock * 512)
        volume.options.storeInterceptor = counter
        let topNodes = VolumeLoader.mountReadsTopNodes
        VolumeLoader.mountReadsTopNodes = 64
        defer { VolumeLoader.mountReadsTopNodes = topNodes }
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        let mountReads = counter.lock.withLock { counter.reads } / 512
        XCTAssertEqual(volume.fs.metadata.withLock { volume.fs.metadata.freeSpace.freeBlocks }, expectedFree)
        let internalNodes = opened.report.internalNodes
        XCTAssertGreaterThan(internalNodes, 2 * VolumeLoader.mountReadsTopNodes, "a tree large enough to tell")
        XCTAssertLessThan(mountReads, VolumeLoader.mountReadsTopNodes + 24, "mount read \(mountReads) nodes of a tree with \(internalNodes) internal nodes")
        try volume.unmountAndCheck()
    }

    /// Files written, punched, cloned and removed over several checkpoints and remounts: the
    /// lists stay exact (fsck compares them with both trees' nodes and every extent).
    func testListsStayExactThroughCheckpointsAndRemounts() throws {
        for blockSize in [512, 4096] {
            let volume = try TestVolume(blockSize: blockSize, size: 64 << 20)
            var random = SeededGenerator(seed: UInt64(blockSize))
            var files: [(name: String, ino: InodeNumber, size: UInt64)] = []
            for round in 0..<6 {
                for index in 0..<40 {
                    let name = "r\(round)-\(index)"
                    let size = random.next() % 40_000
                    let ino = try volume.create(name)
                    try volume.write(ino, [UInt8](repeating: UInt8(index), count: Int(size)), at: 0)
                    files.append((name, ino, size))
                }
                for _ in 0..<10 {
                    let file = files[Int(random.next() % UInt64(files.count))]
                    try volume.fs.fallocate(file.ino, offset: random.next() % 20_000, length: 1 + random.next() % 20_000,
                                            mode: [.punchHole, .keepSize])
                }
                let source = files[Int(random.next() % UInt64(files.count))]
                let clone = try volume.create("clone-\(round)")
                _ = try volume.fs.clone(from: source.ino, sourceOffset: 0, to: clone, destinationOffset: 0,
                                        length: source.size / UInt64(blockSize) * UInt64(blockSize))
                for _ in 0..<15 {
                    let file = files.remove(at: Int(random.next() % UInt64(files.count)))
                    try volume.fs.unlink(parent: FileSystem.rootInode, name: Array(file.name.utf8))
                }
                try volume.fs.sync()
                try volume.fs.journal.checkpoint()
                if round % 2 == 1 {
                    try volume.unmountAndCheck()
                    volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
                }
            }
            try volume.unmountAndCheck()
        }
    }

    /// The newest tree's lists, as items, with `change` applied, written back as version 10
    /// (the crafted tree's nodes at the volume's end taken out of free space first).
    private func craftLists(_ volume: TestVolume, _ change: (inout [BlockRun], inout [BlockRun]) -> Void) throws {
        var crafting = try ImageCrafting(image: volume.image)
        let items = try crafting.items()
        let tree = MetadataTree(tree: try VolumeLoader.openTree(crafting.store, superblock: crafting.superblock).tree.tree,
                                superblock: crafting.superblock)
        var free = BlockRunSet(try items.filter { $0.key.object == 0 && $0.key.kind == MetadataTree.Kind.freeSpace }.map { try tree.decodeFreeSpace($0) })
        var held = try items.filter { $0.key.object == 0 && $0.key.kind == MetadataTree.Kind.heldNodes }.map { try tree.decodeHeldNodes($0) }
        // The crafted tree's nodes come from the end: none of them free.
        free.remove(BlockRun(start: crafting.superblock.blockCount - 256, count: 256))
        var freeRuns = free.runs
        change(&freeRuns, &held)
        let spaceKinds: Set<UInt8> = [MetadataTree.Kind.freeSpace, MetadataTree.Kind.freeBySize, MetadataTree.Kind.heldNodes]
        var crafted = items.filter { !spaceKinds.contains($0.key.kind) }
        for run in freeRuns {
            crafted.append(TreeItem(key: MetadataTree.freeSpaceKey(run.start), value: MetadataTree.encodeRun(run)))
            crafted.append(TreeItem(key: MetadataTree.freeBySizeKey(run), value: []))
        }
        for run in held { crafted.append(TreeItem(key: MetadataTree.heldNodesKey(run.start), value: MetadataTree.encodeRun(run))) }
        try crafting.writeItems(crafted.sorted { $0.key < $1.key }, keepingSpaceLists: true)
    }

    private func unmountedVolumeWithAFile() throws -> (TestVolume, BlockRun) {
        let volume = try TestVolume()
        let ino = try volume.create("file")
        try volume.write(ino, [UInt8](repeating: 7, count: 64 << 10), at: 0)
        try volume.fs.sync()
        try volume.fs.journal.checkpoint()
        let extent = try volume.fs.metadata.withLock { try volume.fs.metadata.inode(ino).extents.extents[0] }
        try volume.fs.unmount()
        volume.fs = nil
        return (volume, extent.physicalRun)
    }

    private func assertRefused(_ volume: TestVolume, saying words: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FileSystem.mount(image: volume.image, options: volume.options), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
        }
        XCTAssertThrowsError(try Volume.check(image: volume.image), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
        }
    }

    /// A free run over a file's blocks would let new data overwrite the file: refused.
    func testAFreeRunOverAFileIsRefused() throws {
        let (volume, fileRun) = try unmountedVolumeWithAFile()
        try craftLists(volume) { free, _ in free.append(fileRun); free = BlockRunSet(free).runs }
        assertRefused(volume, saying: "free space list holds block")
    }

    /// A held run over a file's blocks would be freed under it by the next checkpoint: refused.
    func testAHeldRunOverAFileIsRefused() throws {
        let (volume, fileRun) = try unmountedVolumeWithAFile()
        try craftLists(volume) { _, held in held = BlockRunSet(held + [fileRun]).runs }
        assertRefused(volume, saying: "held")
    }

    /// A free run over the tree's own nodes is what mount cannot see (it reads no node): data
    /// then overwrites nodes. Whatever follows is errors (EIO, the volume shut down), never a
    /// trap, and fsck calls the image damaged.
    func testAFreeRunOverTheTreesNodesGivesErrorsNotATrap() throws {
        let (volume, fileRun) = try unmountedVolumeWithAFile()
        let superblock = try ImageCrafting(image: volume.image).superblock
        try craftLists(volume) { free, held in
            var all = BlockRunSet([BlockRun(start: superblock.firstAllocatableBlock, count: superblock.blockCount - superblock.firstAllocatableBlock)])
            all.remove(fileRun)
            free = all.runs
            held = []
        }
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        // Fill the volume, so that data reaches the crafted tree's nodes at its end.
        var outcome: [String] = []
        do {
            let big = try volume.create("big")
            let chunk = [UInt8](repeating: 0xEE, count: 1 << 20)
            for index in 0..<80 { _ = try volume.write(big, chunk, at: UInt64(index) << 20) }
        } catch {
            outcome.append("\(error)")
        }
        do { try volume.fs.sync() } catch { outcome.append("\(error)") }
        do { try volume.fs.journal.checkpoint() } catch { outcome.append("\(error)") }
        for index in 0..<20 { _ = try? volume.create("after-\(index)") }
        try? volume.fs.unmount()
        volume.fs = nil
        if let remounted = try? FileSystem.mount(image: volume.image, options: volume.options) {
            _ = try? remounted.lookup(parent: FileSystem.rootInode, name: Array("file".utf8))
            _ = try? remounted.lookup(parent: FileSystem.rootInode, name: Array("after-3".utf8))
            try? remounted.unmount()
        }
        XCTAssertThrowsError(try Volume.check(image: volume.image).isEmpty ? { throw Errno.ioError }() : ()) { _ in }
    }

    /// Blocks nothing uses but not listed free: lost space, which fsck reports; mount goes on
    /// (it cannot tell them from nodes without reading the trees, and they are only space).
    func testLostSpaceIsReportedAndMountGoesOn() throws {
        let (volume, _) = try unmountedVolumeWithAFile()
        try craftLists(volume) { _, _ in }
        let problems = try Volume.check(image: volume.image)
        XCTAssertEqual(problems.count, 1)
        XCTAssertTrue(problems.first?.contains("not listed as free") ?? false, "\(problems)")
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        let ino = try volume.fs.lookup(parent: FileSystem.rootInode, name: Array("file".utf8)).ino
        XCTAssertEqual(try volume.read(ino, 64 << 10, at: 0), [UInt8](repeating: 7, count: 64 << 10))
        _ = try volume.create("another")
        try volume.fs.unmount()
        volume.fs = nil
        XCTAssertEqual(try Volume.check(image: volume.image).count, 1)
    }
}
