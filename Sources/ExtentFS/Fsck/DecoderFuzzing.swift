import ExtentFSCore
import SystemPackage

/// Hands arbitrary bytes to the decoders of everything mount reads from an image, and what they
/// decode to the checks and structures mount builds from it, as mount would: for the
/// coverage-guided fuzzer (Tests/DecoderFuzzer, scripts/fuzz.sh) and the replay of its
/// regression corpus (Tests/FuzzCorpus/decoders). A value read from an image must never trap,
/// hang or allocate without bound: any decoder may refuse, nothing may crash.
///
/// Input: byte 0 picks the structure, byte 1 the block size (512 << (byte % 8)), the rest is the
/// structure's bytes. Checksums are the first thing each reader checks, and a fuzzer cannot
/// forge them: the superblock's and each tree node's are recomputed here, and log record and
/// checkpoint payloads are decoded as they come after their checksums have matched.
///
/// Tree nodes are one block each (as in an image): a `treeNode` input is one node, read as the
/// tree reads its root (the expectations from its own header, so that every later check is
/// reached), then changed and committed and read back; a `tree` input is several nodes, the
/// first the root, the others found by the addresses their headers name, loaded as mount loads
/// the metadata tree (MetadataTree.loadAll, then the checker and Metadata).
enum DecoderFuzzing {
    enum Structure: UInt8, CaseIterable {
        case superblock = 0
        case logRecord = 1
        case checkpointPayload = 2
        case checkpointIndex = 3
        case treeNode = 4
        case tree = 5
    }

    /// The selector and block-size bytes that make `body` an input for `structure`.
    static func input(_ structure: Structure, blockSize: Int, body: [UInt8]) -> [UInt8] {
        [structure.rawValue, UInt8(blockSize.trailingZeroBitCount - 9)] + body
    }

    static func run(_ input: [UInt8]) {
        guard input.count >= 2, let structure = Structure(rawValue: input[0] % UInt8(Structure.allCases.count)) else { return }
        let body = Array(input.dropFirst(2))
        let superblock = sampleSuperblock(blockSize: 512 << Int(input[1] % 8))
        switch structure {
        case .superblock: decodeSuperblock(body)
        case .logRecord: replayLogRecord(body, superblock: superblock)
        case .checkpointPayload: loadCheckpoint(body, superblock: superblock)
        case .checkpointIndex:
            // And the payload's capacity, as mount works it out from the runs.
            if let runs = try? CheckpointIndex.decode(body, superblock: superblock) {
                _ = runs.reduce(UInt64(0)) { $0 + $1.count } * UInt64(superblock.blockSize)
            }
        case .treeNode: readTreeNode(body, superblock: superblock)
        case .tree: loadTree(body, superblock: superblock)
        }
    }

    private static func nodes(for superblock: Superblock) -> MemoryNodes {
        MemoryNodes(nodeSize: Int(superblock.blockSize), dataBlocks: superblock.firstAllocatableBlock..<superblock.blockCount)
    }

    /// One node as the tree reads a root; what it holds must read back the same by every path
    /// (a scan, a lookup of each key), and survive changes that split it, a commit and a read.
    private static func readTreeNode(_ body: [UInt8], superblock: Superblock) {
        let device = nodes(for: superblock)
        guard let root = device.root(at: device.add(body)),
              let tree = try? BTree(root: root, owner: MetadataTree.owner, device: device, allocator: device,
                                    cache: NodeCache(budgetBytes: 1 << 20)),
              let report = try? tree.check(), let items = try? tree.items() else { return }
        // One node and nothing else: only a leaf reads whole (an internal node's children are
        // not there).
        precondition(report.nodes == 1 && items.count == report.items, "a tree of one node read back differently")
        for item in items {
            precondition((try? tree.lookup(item.key)) == item.value, "a lookup disagrees with the scan at \(item.key)")
        }
        guard root.generation < UInt64.max, let last = items.last else { return }
        // Changes as a checkpoint makes them: a removal, and inserts of the largest values after
        // the last key, enough to split the leaf.
        var model = items
        do {
            _ = try tree.remove(model.removeFirst().key)
            var key = last.key
            for index in 0..<5 {
                guard let next = key.successor else { break }
                key = next
                let value = [UInt8](repeating: UInt8(index), count: tree.maxValueSize)
                try tree.insert(key, value)
                model.append(TreeItem(key: key, value: value))
            }
            let committed = try tree.commit(generation: root.generation + 1)
            let reread = try BTree(root: committed, owner: MetadataTree.owner, device: device, allocator: device,
                                   cache: NodeCache(budgetBytes: 1 << 20))
            _ = try reread.check()
            let readBack = try reread.items()
            precondition(readBack == model, "a committed tree does not read back as it was changed")
        } catch {
            // Out of addresses (a node named one at the end of the volume): nothing to check.
            precondition(error as? Errno == .noSpace, "a tree read from valid nodes failed to change: \(error)")
        }
    }

    /// Several nodes as the metadata tree of a volume, loaded as mount loads one (VolumeLoader).
    private static func loadTree(_ body: [UInt8], superblock sample: Superblock) {
        guard let (loaded, superblock, tree, device) = loadedTree(body, superblock: sample) else { return }
        load(loaded, superblock: superblock, tree: (MetadataTree(tree: tree, superblock: superblock), device))
    }

    /// Whether a whole-tree input (structure 5) loads whole: the seeds cut from the base images
    /// must, or the fuzzer's mutations start from inputs refused before the name index is read.
    static func treeLoadsWhole(_ input: [UInt8]) -> Bool {
        guard input.count >= 2, input[0] % UInt8(Structure.allCases.count) == Structure.tree.rawValue else { return false }
        return loadedTree(Array(input.dropFirst(2)), superblock: sampleSuperblock(blockSize: 512 << Int(input[1] % 8))) != nil
    }

    private static func loadedTree(_ body: [UInt8], superblock sample: Superblock) -> (LoadedCheckpoint, Superblock, BTree, MemoryNodes)? {
        let device = nodes(for: sample)
        let nodeSize = Int(sample.blockSize)
        var rootAddress: UInt64?
        for start in stride(from: 0, to: body.count, by: nodeSize) {
            let address = device.add(Array(body[start..<min(body.count, start + nodeSize)]))
            if rootAddress == nil { rootAddress = address }
        }
        // The superblock a checkpoint would have written with this root (mount refuses a root
        // whose generation is past its superblock's sequence).
        guard let address = rootAddress, let root = device.root(at: address), root.generation < LogPosition.maxSequence else { return nil }
        var superblock = sample
        superblock.sequence = max(superblock.sequence, root.generation)
        superblock.checkpoint = .tree(root)
        guard let tree = try? BTree(root: root, owner: MetadataTree.owner, device: device, allocator: device,
                                    cache: NodeCache(budgetBytes: MetadataTree.cacheBytes)),
              let report = try? tree.check(),
              let (nextInode, inodes, referenceCounts) = try? MetadataTree(tree: tree, superblock: superblock).loadAll(cache: nil) else { return nil }
        var loaded = LoadedCheckpoint(nextInode: nextInode, inodes: inodes, referenceCounts: referenceCounts)
        loaded.treeNodes = UInt64(report.storedAddresses.count)
        loaded.checkpointRuns = report.storedAddresses.map { BlockRun(start: $0, count: 1) }
        return (loaded, superblock, tree, device)
    }

    /// A volume of 16 MiB as mkfs makes it (its log 256 KiB, after the superblocks), so that what
    /// the image fuzzer's small images hold (Tests/ImageFuzzer, `decoder-seeds`) lies inside it.
    static func sampleSuperblock(blockSize: Int) -> Superblock {
        let bytes: UInt64 = 16 << 20
        var superblock = Superblock(blockSize: UInt32(blockSize), blockCount: bytes / UInt64(blockSize), maxInodes: 2048,
                                    uuid: [UInt8](repeating: 0x5A, count: 16), sequence: 7,
                                    checkpoint: .tree(nil))
        superblock.log = LogRegion(firstBlock: superblock.firstDataBlock, blockCount: LogRegion.blocks(forVolumeBytes: bytes, blockSize: blockSize))
        return superblock
    }

    /// The superblock as read, with its checksum made to match (so that every field is reached),
    /// and what mount derives from a valid one.
    private static func decodeSuperblock(_ body: [UInt8]) {
        var bytes = Array(body.prefix(Superblock.encodedSize))
        if bytes.count < Superblock.encodedSize { bytes += [UInt8](repeating: 0, count: Superblock.encodedSize - bytes.count) }
        let checksum = CRC32C.checksum(Array(bytes[0..<Superblock.encodedSize - 4]))
        withUnsafeBytes(of: checksum.littleEndian) { bytes.replaceSubrange(Superblock.encodedSize - 4..<Superblock.encodedSize, with: $0) }
        guard case .valid(let superblock) = Superblock.decode(bytes) else { return }
        // What mount computes from it before reading anything else.
        let geometry = Geometry(superblock: superblock)
        _ = (geometry.maxFileBlocks, superblock.firstAllocatableBlock, superblock.log.bytes(blockSize: geometry.blockSize))
        _ = superblock.blockCount * UInt64(superblock.blockSize)
        guard case .valid(let again) = Superblock.decode(superblock.encode()), again == superblock else {
            preconditionFailure("a valid superblock does not survive encoding and decoding")
        }
    }

    /// A record replayed over a volume holding only its root, then checked and loaded as mount
    /// would.
    private static func replayLogRecord(_ payload: [UInt8], superblock: Superblock) {
        let root = Inode(ino: FileSystem.rootInode, mode: ExtentFSCore.FileType.directory.rawValue | 0o755, uid: 0, gid: 0,
                         time: Timespec(seconds: 0, nanoseconds: 0), cache: nil)
        root.parent = FileSystem.rootInode
        var state = ReplayState(nextInode: 2, inodes: [FileSystem.rootInode: root], referenceCounts: ReferenceCounts())
        guard (try? LogRecord.apply(payload, to: &state, superblock: superblock, cache: nil)) != nil else { return }
        load(LoadedCheckpoint(nextInode: state.nextInode, inodes: Array(state.inodes.values), referenceCounts: state.referenceCounts),
             superblock: superblock)
    }

    private static func loadCheckpoint(_ payload: [UInt8], superblock: Superblock) {
        guard let (nextInode, inodes, referenceCounts) = try? CheckpointCodec.decode(payload, superblock: superblock, cache: nil) else { return }
        load(LoadedCheckpoint(nextInode: nextInode, inodes: inodes, referenceCounts: referenceCounts), superblock: superblock)
    }

    /// Mount's steps after decoding: the checker; then, if it finds nothing, the in-memory
    /// metadata (free space from the extents, the running size count) and a checkpoint of it,
    /// which must decode to the same metadata.
    private static func load(_ loaded: LoadedCheckpoint, superblock: Superblock, tree: (MetadataTree, MemoryNodes)? = nil) {
        guard Checker.check(superblock: superblock, loaded: loaded).allSatisfy(\.isOrphan) else { return }
        let metadata = Metadata(superblock: superblock, loaded: loaded)
        let encoded = metadata.withLock { () -> [UInt8] in
            let snapshot = CheckpointCodec.snapshot(metadata)
            return CheckpointCodec.encode(nextInode: snapshot.nextInode, inodes: snapshot.inodes, referenceCounts: snapshot.referenceCounts)
        }
        guard let (_, inodes, _) = try? CheckpointCodec.decode(encoded, superblock: superblock, cache: nil),
              inodes.count == loaded.inodes.count else {
            preconditionFailure("metadata that passed the checker does not survive a checkpoint")
        }
        _ = metadata.withLock { (metadata.freeSpace.available, metadata.space.reserveBlocks(promisedDataBlocks: 0)) }
        checkpointIntoTree(metadata, superblock: superblock, tree: tree)
    }

    /// Neighbouring runs of one count as one: a whole checkpoint may list them apart, the tree
    /// reads them back joined.
    private static func joined(_ entries: [ReferenceCounts.Entry]) -> [ReferenceCounts.Entry] {
        var joined: [ReferenceCounts.Entry] = []
        for entry in entries {
            if let last = joined.last, last.run.end == entry.run.start, last.count == entry.count {
                joined[joined.count - 1].run.count += entry.run.count
            } else {
                joined.append(entry)
            }
        }
        return joined
    }

    /// The metadata written by a checkpoint into the tree it was loaded from (what the first
    /// checkpoint after a mount does, over whatever that tree held), or into a new one (an image
    /// of version 3 converting), then read back as mount reads it: the same metadata.
    private static func checkpointIntoTree(_ metadata: Metadata, superblock: Superblock, tree loadedFrom: (MetadataTree, MemoryNodes)?) {
        let device = loadedFrom?.1 ?? nodes(for: superblock)
        var changes = CheckpointChanges(everything: true)
        let (snapshot, expected) = metadata.withLock {
            (changes.take(from: metadata), (metadata.nextInode, Set(metadata.inodes.keys), joined(metadata.referenceCounts.entries)))
        }
        do {
            let tree = try loadedFrom?.0 ?? MetadataTree(
                tree: BTree(root: nil, owner: MetadataTree.owner, device: device, allocator: device, cache: NodeCache(budgetBytes: 1 << 20)),
                superblock: superblock)
            try tree.apply(snapshot)
            let generation = superblock.sequence + 1
            let root = try tree.tree.commit(generation: generation)
            var written = superblock
            written.sequence = generation
            written.checkpoint = .tree(root)
            let reread = MetadataTree(tree: try BTree(root: root, owner: MetadataTree.owner, device: device, allocator: device,
                                                      cache: NodeCache(budgetBytes: 1 << 20)),
                                      superblock: written)
            _ = try reread.tree.check()
            let (nextInode, inodes, referenceCounts) = try reread.loadAll(cache: nil)
            precondition(nextInode == expected.0 && Set(inodes.map(\.ino)) == expected.1 && joined(referenceCounts.entries) == expected.2,
                         "metadata that passed the checker does not survive a checkpoint into the tree")
        } catch {
            // Out of addresses (a node named one at the end of the volume): nothing to check.
            precondition(error as? Errno == .noSpace, "metadata that passed the checker failed to checkpoint into the tree: \(error)")
        }
    }
}
