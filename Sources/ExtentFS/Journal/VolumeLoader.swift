import ExtentFSCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Reads a volume from its backing store: picks the newest valid superblock copy, reads and
/// verifies the checkpoint it points at, replays the log over it. Every failure is one clear line.
enum VolumeLoader {
    struct SuperblockChoice {
        var superblock: Superblock
        /// The other copy when it is valid: its checkpoint and log tail stay intact too.
        var older: Superblock?
        /// Problems with the other copy (reported by fsck; mount uses the good copy).
        var warnings: [String]
    }

    static func readSuperblock(_ store: BackingStore) throws -> SuperblockChoice {
        guard store.size >= Superblock.reservedBytes else {
            throw ExtentFSError("\(store.path) is not an extentfs image (only \(store.size) bytes)", errno: .invalidArgument)
        }
        var valid: [Superblock] = []
        var newer: UInt32?
        var older: UInt32?
        var damage: [String] = []
        for (slot, offset) in Superblock.slotOffsets.enumerated() {
            switch Superblock.decode(try store.read(Superblock.encodedSize, at: offset)) {
            case .valid(let superblock) where superblock.sequence % 2 != UInt64(slot):
                // Each commit writes copy sequence % 2: a copy elsewhere was not written by one,
                // and taking it would free the other copy's checkpoint as if it were its own.
                damage.append("superblock copy \(slot) (byte \(offset)): sequence \(superblock.sequence) belongs in copy \(1 - slot)")
            case .valid(let superblock): valid.append(superblock)
            case .newerVersion(let version): newer = version
            case .olderVersion(let version): older = version
            case .damaged(let reason): damage.append("superblock copy \(slot) (byte \(offset)): \(reason)")
            case .notExtentFS: break
            }
        }
        if let version = newer {
            throw ExtentFSError("\(store.path) is extentfs format version \(version); this extentfs reads version \(Superblock.currentVersion) and older", errno: .invalidArgument)
        }
        if let version = older, valid.isEmpty {
            throw ExtentFSError("\(store.path) is extentfs format version \(version), which this extentfs (version \(Superblock.currentVersion), with a write-ahead log) does not mount: copy the files off with the extentfs that made it and onto a new image", errno: .invalidArgument)
        }
        guard let newest = valid.max(by: { $0.sequence < $1.sequence }) else {
            if damage.isEmpty {
                throw ExtentFSError("\(store.path) is not an extentfs image (no extentfs superblock found)", errno: .invalidArgument)
            }
            throw ExtentFSError("\(store.path) is a damaged extentfs image: \(damage.joined(separator: "; "))", errno: .ioError)
        }
        // From the second commit on, both copies hold a superblock (sequences s and s - 1): a copy
        // that does not is damaged even if its magic number is gone too.
        if newest.sequence >= 2, valid.count < 2, damage.isEmpty {
            let other = Superblock.slotOffsets[Int((newest.sequence + 1) % 2)]
            damage.append("superblock copy \(Int((newest.sequence + 1) % 2)) (byte \(other)) is missing or unreadable; the other copy (sequence \(newest.sequence)) is in use")
        }
        let needed = newest.blockCount * UInt64(newest.blockSize)
        guard needed <= store.size else {
            throw ExtentFSError("\(store.path) is a damaged extentfs image: the superblock describes \(needed) bytes but the image has \(store.size) (truncated?)", errno: .ioError)
        }
        let other = valid.first { $0.sequence < newest.sequence && $0.uuid == newest.uuid && $0.log == newest.log }
        return SuperblockChoice(superblock: newest, older: other, warnings: damage)
    }

    /// The newest checkpoint with the log replayed over it; the blocks of the other copy's
    /// checkpoint and its log tail are kept out of reuse.
    /// `onDemand`: a mount of a tree image keeps in memory only what replay changed, the root
    /// and the orphans; it scans the rest once (cross-checks, free space, counts) and lets it go
    /// (`notHeld`), for the inode cache to read again when asked (Metadata.inode). Otherwise
    /// (fsck, and images of versions 2 and 3) `inodes` is every inode.
    static func load(_ store: BackingStore, choice: SuperblockChoice, cache: PageCache?, onDemand: Bool = false) throws -> LoadedCheckpoint {
        let superblock = choice.superblock
        let treeImage = superblock.version >= Superblock.treeVersion
        var opened: MetadataTree?
        var volume: StoredVolumeItems?
        var loaded = try treeImage
            ? loadTree(store, choice: choice, cache: cache, whole: !onDemand, opened: &opened, volume: &volume)
            : loadWholeCheckpoints(store, choice: choice, cache: cache)
        let checkpointNextInode = loaded.nextInode
        func damaged(_ error: any Error) -> ExtentFSError {
            ExtentFSError("\(store.path) is a damaged extentfs image: the metadata tree: \(error)", errno: .ioError)
        }
        var state = ReplayState(nextInode: loaded.nextInode, inodes: [:], referenceCounts: loaded.referenceCounts,
                                loadFromCheckpoint: opened.map { tree in
                                    { ino in
                                        do { return try tree.loadInode(ino, nextInode: checkpointNextInode, cache: cache) } catch { throw damaged(error) }
                                    }
                                })
        for inode in loaded.inodes { state.inodes[inode.ino] = inode }
        if let volume { state.fileBlocks = volume.fileBlocks }
        if let volume, let free = volume.free {
            loaded.heldNodesRecorded = volume.held
            // A mount that read no node took what is held from the lists (holdListedNodes).
            if !onDemand { try checkFreeSpace(free, volume: volume, choice: choice, into: &loaded, path: store.path) }
        }
        var replayed = 0
        let head: LogPosition
        do {
            head = try LogRing.replay(store, superblock: superblock, from: superblock.logTail) { payload in
                try LogRecord.apply(payload, to: &state, superblock: superblock, cache: cache)
                replayed += 1
            }
        } catch let error as DecodingError {
            throw ExtentFSError("\(store.path) is a damaged extentfs image: log record \(replayed + 1) after the checkpoint: \(error)", errno: .ioError)
        }
        loaded.nextInode = state.nextInode
        loaded.inodes = Array(state.inodes.values)
        if let opened, let root = superblock.checkpoint.treeRoot { loaded.treeNodesRead = (root, opened.tree.cache) }
        do {
            if let opened, let volume {
                try holdWhatMountNeeds(opened, volume: volume, state: state, into: &loaded, cache: cache)
            } else if let volume {
                // Read whole (fsck): the volume items as replay leaves them, for the checker.
                loaded.storedVolume = StoredVolumeItems(fileBlocks: state.fileBlocks, inodeCount: state.inodeCount ?? volume.inodeCount,
                                                        inodeBytes: state.inodeBytes ?? volume.inodeBytes, orphans: volume.orphans)
            }
        } catch let error as ExtentFSError {
            throw error
        } catch {
            throw damaged(error)
        }
        if !treeImage || volume == nil {
            // The tree has no volume items yet (versions 2-4): the next checkpoint writes them
            // all, orphans included (they are held: listed by the changed inodes).
            loaded.sinceCheckpoint.allFileBlocks = true
            for inode in loaded.inodes where inode.nlink == 0 { state.changed.insert(inode.ino) }
        }
        // A tree without free space items (before version 10) gets them all at its first checkpoint.
        if superblock.version < Superblock.freeSpaceVersion { loaded.sinceCheckpoint.allFreeSpace = true }
        loaded.referenceCounts = state.referenceCounts
        loaded.sinceCheckpoint.add(inodes: state.changed, referenceRuns: state.changedReferenceRuns, fileBlockChanges: state.fileBlockChanges)
        loaded.logHead = head
        loaded.replayedRecords = replayed
        loaded.logReclaimTail = superblock.logTail.offset
        if let older = choice.older, older.sequence % 2 != superblock.sequence % 2 {
            loaded.logReclaimTail = older.logTail.offset
        }
        return loaded
    }

    /// Version 10's lists against both trees' nodes and the file blocks (before replay), when
    /// the load read every node (fsck): a free run holding a file block or a tree node would let
    /// data overwrite them, and a held run the newest tree reaches would be freed under it, so
    /// that is damage; blocks nothing uses that are not listed free are only lost space (fsck
    /// reports it; a mount cannot tell them from nodes, so they stay unused). Equality is known
    /// only when the older copy's nodes were read (the checkpoint keeps those out of free space).
    private static func checkFreeSpace(_ free: BlockRunSet, volume: StoredVolumeItems, choice: SuperblockChoice,
                                       into loaded: inout LoadedCheckpoint, path: String) throws {
        let superblock = choice.superblock
        let used = BlockRunSet(volume.fileBlocks.runs + loaded.checkpointRuns)
        if let block = firstBlock(of: free, in: used) {
            throw ExtentFSError("\(path) is a damaged extentfs image: the free space list holds block \(block), which a file or the metadata tree uses", errno: .ioError)
        }
        let data = BlockRun(start: superblock.firstAllocatableBlock, count: superblock.blockCount - superblock.firstAllocatableBlock)
        let newest = BlockRunSet(loaded.checkpointRuns).subtracting(BlockRunSet(loaded.heldUntilNextCheckpoint))
        for run in volume.held where newest.intersects(run) || volume.fileBlocks.intersects(run) {
            throw ExtentFSError("\(path) is a damaged extentfs image: the held nodes list holds block \(run.start), which a file or the newest metadata tree uses", errno: .ioError)
        }
        let olderKnown = superblock.sequence == 1 || (choice.older != nil && loaded.warnings.isEmpty && choice.warnings.isEmpty)
        guard olderKnown else { return }
        if BlockRunSet(volume.held) != BlockRunSet(loaded.heldUntilNextCheckpoint) {
            loaded.freeSpaceProblems.append("the held nodes list (\(BlockRunSet(volume.held).blockCount) blocks) is not the older superblock copy's nodes the newest tree no longer reaches (\(BlockRunSet(loaded.heldUntilNextCheckpoint).blockCount) blocks)")
        }
        let expected = BlockRunSet.complement(of: [used], within: data)
        if expected != free {
            let lost = BlockRunSet.complement(of: [free, used], within: data)
            let listed = lost.runs.prefix(5).map(\.description).joined(separator: ", ")
            loaded.freeSpaceProblems.append("\(lost.blockCount) blocks that nothing uses are not listed as free (\(listed))")
        }
    }

    /// Format version 5: mount holds the root, the orphans the tree lists and what replay
    /// changed, and takes the rest (counts, the blocks files use) from the tree's volume items as
    /// the log leaves them, reading no other inode. What it read is checked as it is read; the
    /// cross-checks of every structure are fsck's. One cheap one stays: no tree node may be a
    /// file block (a damaged file block list would let data be written over metadata).
    private static func holdWhatMountNeeds(_ tree: MetadataTree, volume: StoredVolumeItems, state: ReplayState,
                                           into loaded: inout LoadedCheckpoint, cache: PageCache?) throws {
        let nextInode = max(loaded.nextInode, state.nextInode)
        for ino in [FileSystem.rootInode] + volume.orphans where state.inodes[ino] == nil && !state.removed.contains(ino) {
            guard let inode = try tree.loadInode(ino, nextInode: nextInode, cache: cache) else {
                throw DecodingError(description: "inode \(ino) (the root, or listed as an orphan) is not in the metadata tree")
            }
            loaded.inodes.append(inode)
        }
        guard let root = loaded.inodes.first(where: { $0.ino == FileSystem.rootInode }), root.type == .directory else {
            throw DecodingError(description: "the root directory (inode 1) is missing or not a directory")
        }
        let total = state.inodeCount ?? volume.inodeCount
        let bytes = Int(clamping: state.inodeBytes ?? volume.inodeBytes)
        guard total >= UInt64(loaded.inodes.count) else {
            throw DecodingError(description: "the inode count \(total) is below the \(loaded.inodes.count) inodes mount holds")
        }
        let heldBytes = loaded.inodes.reduce(0) { $0 + $1.encodedSizeEstimate }
        loaded.notHeld = NotHeldInodes(count: total - UInt64(loaded.inodes.count), checkpointBytes: max(0, bytes - heldBytes))
        loaded.fileBlocks = state.fileBlocks
        if let run = loaded.checkpointRuns.first(where: { state.fileBlocks.intersects($0) }) {
            throw DecodingError(description: "metadata tree block \(run) is also listed as a file block")
        }
        loaded.checkProblems = []
    }

    /// Version 4 on: the newest copy's tree, read whole (`whole`, or a tree without the volume
    /// items of version 5: they are needed to mount without reading every inode) or opened for
    /// reading on demand (`opened`); the older copy's nodes that the newest does not reach are
    /// held until the next checkpoint replaces that copy.
    private static func loadTree(_ store: BackingStore, choice: SuperblockChoice, cache: PageCache?, whole: Bool,
                                 opened: inout MetadataTree?, volume: inout StoredVolumeItems?) throws -> LoadedCheckpoint {
        let superblock = choice.superblock
        func damaged(_ reason: String) -> ExtentFSError {
            ExtentFSError("\(store.path) is a damaged extentfs image: \(reason)", errno: .ioError)
        }
        // Each checkpoint stamps its nodes with its superblock's sequence: a root from the
        // future was not written by this volume's checkpoints (and the next commit could not
        // take a generation above it).
        if let root = superblock.checkpoint.treeRoot, root.generation > superblock.sequence {
            throw damaged("the metadata tree's root has generation \(root.generation), after superblock \(superblock.sequence)")
        }
        let newest: (tree: MetadataTree, report: TreeCheckReport)
        // Version 10 lists free space and held nodes: mount reads no node to find the nodes.
        let listsSpace = !whole && superblock.version >= Superblock.freeSpaceVersion
        do {
            // Otherwise mount reads only the tree's internal nodes here (a leaf's address is in
            // its parent).
            newest = try openTree(store, superblock: superblock, readEveryNode: whole, listNodes: !listsSpace)
        } catch {
            throw damaged("the metadata tree: \(error)")
        }
        var loaded: LoadedCheckpoint
        do {
            var onDemand: (nextInode: InodeNumber, object: (referenceCounts: ReferenceCounts, volume: StoredVolumeItems?))?
            // A tree of images or a name index in an older layout is read whole: its first
            // checkpoint rewrites them (below), so every inode must be in memory until then.
            if !whole, superblock.version >= MetadataTree.firstVersionWithIndexRecords {
                let nextInode = try newest.tree.storedNextInode()
                onDemand = (nextInode, try newest.tree.loadVolumeObject(nextInode: nextInode))
            }
            if let onDemand, let items = onDemand.object.volume {
                loaded = LoadedCheckpoint(nextInode: onDemand.nextInode, inodes: [], referenceCounts: onDemand.object.referenceCounts)
                volume = items
                opened = newest.tree
            } else {
                var inodes: [Inode] = []
                let (nextInode, referenceCounts) = try newest.tree.forEachInode(cache: cache, volume: &volume) { inodes.append($0) }
                loaded = LoadedCheckpoint(nextInode: nextInode, inodes: inodes, referenceCounts: referenceCounts)
            }
        } catch {
            throw damaged("the metadata tree: \(error)")
        }
        // A tree of version 4 or 5 holds images of the layout before version 6: the first
        // checkpoint rewrites every one (and only the images: extents are stored as they were),
        // so that the new tree holds no image of the old layout. A version 6 tree's directories
        // have no entry totals and no name index, a version 7 or 8 tree's index lists cookies
        // only: the first checkpoint rewrites each directory whole (its entries were read whole,
        // so it is complete and rewritten whole). O(the inodes), once.
        let oldImages: Set<InodeNumber>
        if superblock.version < InodeImageLayout.firstVersionWithFlags {
            oldImages = Set(loaded.inodes.map(\.ino))
        } else if superblock.version < MetadataTree.firstVersionWithIndexRecords {
            oldImages = Set(loaded.inodes.filter { $0.type == .directory }.map(\.ino))
        } else {
            oldImages = []
        }
        loaded.sinceCheckpoint = CheckpointChanges(inodes: oldImages, referenceRuns: [])
        loaded.treeHeight = newest.report.height
        if listsSpace, let items = volume, let free = items.free {
            do {
                try holdListedNodes(free: free, items: items, superblock: superblock, into: &loaded)
            } catch {
                throw damaged("the metadata tree: \(error)")
            }
            return loaded
        }
        // A version 10 tree without the lists (a tree with no counts item is read whole): its
        // nodes from the nodes after all.
        let newestNodes: [UInt64]
        do {
            newestNodes = listsSpace ? try newest.tree.tree.storedNodeAddresses() : newest.report.storedAddresses
        } catch {
            throw damaged("the metadata tree: \(error)")
        }
        loaded.treeNodes = UInt64(listsSpace ? newestNodes.count : newest.report.nodes)
        loaded.treeFill = newest.report.fill
        loaded.treeUnderfilledNodes = newest.report.underfilledNodes
        // A leaf's address comes from its parent unread: it must be a data block all the same.
        if let outside = newestNodes.first(where: { $0 < superblock.firstAllocatableBlock || $0 >= superblock.blockCount }) {
            throw damaged("the metadata tree: metadata tree node address \(outside) is outside the volume's data blocks")
        }
        loaded.checkpointRuns = newestNodes.map { BlockRun(start: $0, count: 1) }
        if let older = choice.older, older.sequence % 2 != superblock.sequence % 2 {
            // An older copy whose checkpoint cannot be read reaches nothing this mount could keep
            // safe; the newest copy is intact either way. No checkpoint ever leaves the older
            // copy's unreadable (copy-on-write: it is not written over until a newer one is
            // durable), so that is damage: reported (fsck), and healed by the next checkpoint.
            do {
                if older.version >= Superblock.treeVersion {
                    let olderNodes = try openTree(store, superblock: older, readEveryNode: whole).report.storedAddresses
                    if let outside = olderNodes.first(where: { $0 < older.firstAllocatableBlock || $0 >= older.blockCount }) {
                        throw DecodingError(description: "metadata tree node address \(outside) is outside the volume's data blocks")
                    }
                    loaded.heldUntilNextCheckpoint = Set(olderNodes).subtracting(newestNodes).sorted().map { BlockRun(start: $0, count: 1) }
                } else {
                    loaded.heldUntilNextCheckpoint = try checkpointRuns(store, superblock: older)
                }
            } catch {
                loaded.warnings.append("the checkpoint of the older superblock copy (sequence \(older.sequence)) is damaged: \(error)")
            }
            loaded.checkpointRuns += loaded.heldUntilNextCheckpoint
        }
        return loaded
    }

    /// Version 10: every block either superblock copy's checkpoint holds is what is neither free
    /// nor a file block (the checkpoint's own, before replay); of those, the listed held nodes
    /// are the older copy's only (free once the next checkpoint is durable), the rest this tree's.
    /// A held run outside them is damage (it would be freed over a file or a node of this tree).
    private static func holdListedNodes(free: BlockRunSet, items: StoredVolumeItems, superblock: Superblock,
                                        into loaded: inout LoadedCheckpoint) throws {
        if let block = firstBlock(of: free, in: items.fileBlocks) {
            throw DecodingError(description: "the free space list holds block \(block), which a file uses")
        }
        let data = BlockRun(start: superblock.firstAllocatableBlock, count: superblock.blockCount - superblock.firstAllocatableBlock)
        let held = BlockRunSet.complement(of: [free, items.fileBlocks], within: data)
        let olderOnly = BlockRunSet(items.held)
        for run in olderOnly.runs where held.runs(within: run) != [run] {
            throw DecodingError(description: "held nodes entry \(run) is free space or a file block")
        }
        loaded.checkpointRuns = held.runs
        loaded.heldUntilNextCheckpoint = olderOnly.runs
        loaded.treeNodes = held.blockCount - olderOnly.blockCount
    }

    /// The first block of `runs` that is also in `set`.
    private static func firstBlock(of runs: BlockRunSet, in set: BlockRunSet) -> UInt64? {
        for run in runs.runs where set.intersects(run) { return set.runs(within: run).first?.start }
        return nil
    }

    /// Internal nodes a version 10 mount reads to warm the node cache, from the root down, each
    /// level's reads started together: every internal node of a tree of a million small files
    /// (some 1,100 at 4 KiB blocks: 10-20 ms, as measured), the top of a larger one. Each not read
    /// then costs a read at the first lookup that passes through it: at a million files, cold
    /// stats ran 7-16% slower with only the top 64 read. A bound, so that mount time does not
    /// grow with the tree. Tests make it small.
    nonisolated(unsafe) static var mountReadsTopNodes = 2_048

    /// A superblock's tree and the addresses of all its nodes: every node read and checked
    /// (structure, checksums, key order; fsck), or only the internal ones (mount: a leaf is
    /// checked when it is read), or none (`listNodes` false: a version 10 mount, which has them
    /// from the free space it lists).
    static func openTree(_ store: BackingStore, superblock: Superblock, readEveryNode: Bool = true,
                         listNodes: Bool = true) throws -> (tree: MetadataTree, report: TreeCheckReport) {
        let device = TreeReader(store: store, superblock: superblock)
        let tree = try BTree(root: superblock.checkpoint.treeRoot, owner: MetadataTree.owner, device: device,
                             allocator: device, cache: NodeCache(budgetBytes: MetadataTree.cacheBytes))
        var report: TreeCheckReport
        if readEveryNode {
            report = try tree.check()
        } else {
            report = TreeCheckReport()
            if listNodes {
                report.storedAddresses = try tree.storedNodeAddresses()
            } else {
                try tree.readTopNodes(limit: mountReadsTopNodes)
            }
            report.nodes = report.storedAddresses.count
            report.height = superblock.checkpoint.treeRoot.map { Int($0.level) + 1 } ?? 0
        }
        return (MetadataTree(tree: tree, superblock: superblock), report)
    }

    /// Versions 2 and 3: whole checkpoints. The tree does not hold anything yet: the first
    /// checkpoint writes everything into it, and both whole checkpoints stay until it has
    /// replaced both superblock copies.
    private static func loadWholeCheckpoints(_ store: BackingStore, choice: SuperblockChoice, cache: PageCache?) throws -> LoadedCheckpoint {
        let superblock = choice.superblock
        var loaded = try loadCheckpoint(store, superblock: superblock, cache: cache)
        loaded.heldUntilSecondCheckpoint = loaded.checkpointRuns
        if let older = choice.older, older.sequence % 2 != superblock.sequence % 2, older.checkpoint != superblock.checkpoint {
            // As loadTree: an older copy's checkpoint that does not read back is damage.
            do {
                let newest = Set(loaded.checkpointRuns)
                loaded.heldUntilNextCheckpoint = try checkpointRuns(store, superblock: older).filter { !newest.contains($0) }
            } catch {
                loaded.warnings.append("the checkpoint of the older superblock copy (sequence \(older.sequence)) is damaged: \(error)")
            }
        }
        loaded.checkpointRuns = loaded.heldUntilSecondCheckpoint + loaded.heldUntilNextCheckpoint
        return loaded
    }

    /// Mount keeps all metadata in memory and reads a checkpoint whole. A sparse image that takes
    /// no room on disk can still claim terabytes of checkpoint, and asking for them would end
    /// the process instead of refusing the image: more than half of this machine's memory is
    /// refused with a line (ENOMEM), before anything is allocated.
    static func requireMemory(for bytes: UInt64, _ what: String, of store: BackingStore) throws {
        let memory = machineMemoryBytes
        guard bytes <= memory / 2 else {
            throw ExtentFSError("\(store.path): \(what) is \(bytes) bytes, more than half of this machine's memory (\(memory) bytes): not loaded",
                                errno: .noMemory)
        }
    }

    /// This machine's memory (tests make it small, to see the refusal without the allocation).
    nonisolated(unsafe) static var machineMemoryBytes: UInt64 =
        UInt64(max(0, sysconf(Int32(_SC_PHYS_PAGES)))) * UInt64(max(0, sysconf(Int32(_SC_PAGESIZE))))

    /// The blocks of a whole checkpoint (index and payload), from its index alone.
    static func checkpointRuns(_ store: BackingStore, superblock: Superblock) throws -> [BlockRun] {
        guard case .whole(let root) = superblock.checkpoint else { return [] }
        let blockSize = UInt64(superblock.blockSize)
        guard root.indexBlock >= superblock.firstAllocatableBlock, root.indexBlockCount > 0,
              root.indexBlockCount <= superblock.blockCount, root.indexBlock <= superblock.blockCount - root.indexBlockCount,
              root.indexBytes <= root.indexBlockCount * blockSize else {
            throw DecodingError(description: "the checkpoint index location is out of range")
        }
        try requireMemory(for: root.indexBytes, "the checkpoint index", of: store)
        let index = try store.read(Int(root.indexBytes), at: root.indexBlock * blockSize)
        guard CRC32C.checksum(index) == root.indexChecksum else { throw DecodingError(description: "checkpoint index checksum mismatch") }
        return try CheckpointIndex.decode(index, superblock: superblock) + [BlockRun(start: root.indexBlock, count: root.indexBlockCount)]
    }

    /// A whole checkpoint alone (versions 2 and 3); its blocks in `checkpointRuns`.
    static func loadCheckpoint(_ store: BackingStore, superblock: Superblock, cache: PageCache?) throws -> LoadedCheckpoint {
        guard case .whole(let root) = superblock.checkpoint else {
            throw ExtentFSError("\(store.path): superblock \(superblock.sequence) has no whole checkpoint", errno: .ioError)
        }
        let blockSize = UInt64(superblock.blockSize)
        func damaged(_ reason: String) -> ExtentFSError {
            ExtentFSError("\(store.path) is a damaged extentfs image: \(reason)", errno: .ioError)
        }
        guard root.indexBlock >= superblock.firstAllocatableBlock, root.indexBlockCount > 0,
              root.indexBlockCount <= superblock.blockCount, root.indexBlock <= superblock.blockCount - root.indexBlockCount,
              root.indexBytes <= root.indexBlockCount * blockSize else {
            throw damaged("the checkpoint index location is out of range")
        }
        try requireMemory(for: root.indexBytes, "the checkpoint index", of: store)
        let index = try store.read(Int(root.indexBytes), at: root.indexBlock * blockSize)
        guard CRC32C.checksum(index) == root.indexChecksum else { throw damaged("checkpoint index checksum mismatch") }
        let payloadRuns: [BlockRun]
        do {
            payloadRuns = try CheckpointIndex.decode(index, superblock: superblock)
        } catch {
            throw damaged("\(error)")
        }
        let capacity = payloadRuns.reduce(UInt64(0)) { $0 + $1.count } * blockSize
        guard root.payloadBytes <= capacity, root.payloadBytes < UInt64(Int.max) else {
            throw damaged("checkpoint payload length exceeds its blocks")
        }
        try requireMemory(for: root.payloadBytes, "the checkpoint", of: store)
        var payload = [UInt8](repeating: 0, count: Int(root.payloadBytes))
        var offset = 0
        try payload.withUnsafeMutableBytes { bytes in
            for run in payloadRuns where offset < bytes.count {
                let length = min(Int(run.count * blockSize), bytes.count - offset)
                try store.read(into: bytes.baseAddress! + offset, count: length, at: run.start * blockSize)
                offset += length
            }
        }
        guard CRC32C.checksum(payload) == root.payloadChecksum else { throw damaged("checkpoint payload checksum mismatch") }
        do {
            let (nextInode, inodes, referenceCounts) = try CheckpointCodec.decode(payload, superblock: superblock, cache: cache)
            let indexRun = BlockRun(start: root.indexBlock, count: root.indexBlockCount)
            var loaded = LoadedCheckpoint(nextInode: nextInode, inodes: inodes, referenceCounts: referenceCounts)
            loaded.checkpointRuns = payloadRuns + [indexRun]
            return loaded
        } catch {
            throw damaged("\(error)")
        }
    }
}
