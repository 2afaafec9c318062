/// Free space in the tree (format version 10), by position and by size, as XFS's two free-space
/// btrees per allocation group, and the nodes the older superblock copy still holds:
///   (0, freeSpace, first block)              a run of free blocks: block count u64
///   (bySize | count, freeBySize, first block) the same run under its size (empty value)
///   (0, heldNodes, first block)              a run of the older copy's tree's nodes that this
///                                            checkpoint's tree no longer reaches: block count u64
/// Free means: in the data area, not a file block, and not held by either superblock copy's
/// checkpoint as this checkpoint leaves them (its own nodes included, and the older copy's that
/// it no longer reaches). Runs are maximal (two never touch), so each run of the first kind is
/// one of the second and an allocation that wants `count` blocks finds the smallest run that
/// holds them by the second's order.
///
/// A checkpoint rewrites the runs over the ranges where that changed (TreeStorage computes what
/// is free there): file blocks taken or released, nodes of the checkpoint before last freed, and
/// the nodes this checkpoint is about to write, which it allocates before the tree is committed
/// and records like any other change (Journal.recordSpace).
///
/// So mount knows every block either copy holds without reading a node: the data area less the
/// free runs and the file blocks; of those, the held runs become free once the next checkpoint
/// (which replaces the older copy) is durable, and the rest is this tree's.
extension MetadataTree {
    /// Object numbers from here up index free runs by size: no inode number reaches them
    /// (CheckpointCodec.validatedNextInode).
    package static let freeBySizeObjectBase: UInt64 = 1 << 63

    package static func freeSpaceKey(_ block: UInt64) -> TreeKey {
        TreeKey(object: 0, kind: Kind.freeSpace, offset: block)
    }

    package static func freeBySizeKey(_ run: BlockRun) -> TreeKey {
        TreeKey(object: freeBySizeObjectBase | run.count, kind: Kind.freeBySize, offset: run.start)
    }

    /// The stored free runs over each of `ranges` become `free(range)`'s. Each range is first
    /// widened to every stored run overlapping or touching it, so that runs stay maximal: what
    /// `free` gives for the widened range is exact, and outside the ranges nothing changed.
    package func replaceFreeSpace(over ranges: [BlockRun], free: (BlockRun) -> [BlockRun]) throws {
        for range in BlockRun.merged(ranges) {
            var lower = range.start, upper = range.end
            var stale: [BlockRun] = []
            if let item = try tree.lastItem(atOrBelow: Self.freeSpaceKey(lower)), item.key.object == 0,
               item.key.kind == Kind.freeSpace {
                let run = try decodeFreeSpace(item)
                if run.end >= lower {
                    lower = run.start
                    upper = max(upper, run.end)
                    stale.append(run)
                }
            }
            if range.start < upper {
                for item in try tree.items(from: Self.freeSpaceKey(range.start + 1), through: Self.freeSpaceKey(upper)) {
                    let run = try decodeFreeSpace(item)
                    upper = max(upper, run.end)
                    stale.append(run)
                }
            }
            for run in stale {
                _ = try tree.remove(Self.freeSpaceKey(run.start))
                _ = try tree.remove(Self.freeBySizeKey(run))
            }
            for run in free(BlockRun(start: lower, count: upper - lower)) where run.count > 0 {
                try tree.insert(Self.freeSpaceKey(run.start), Self.encodeRun(run))
                try tree.insert(Self.freeBySizeKey(run), [])
            }
        }
    }

    package static func heldNodesKey(_ block: UInt64) -> TreeKey {
        TreeKey(object: 0, kind: Kind.heldNodes, offset: block)
    }

    /// The held runs stored as `old` become `new` (both as this tree holds or will hold them:
    /// runs as a BlockRunSet joins them); only runs that differ are touched.
    package func replaceHeldNodes(_ old: BlockRunSet, with new: BlockRunSet) throws {
        let kept = Set(old.runs).intersection(new.runs)
        for run in old.runs where !kept.contains(run) { _ = try tree.remove(Self.heldNodesKey(run.start)) }
        for run in new.runs where !kept.contains(run) { try tree.insert(Self.heldNodesKey(run.start), Self.encodeRun(run)) }
    }

    package func decodeFreeSpace(_ item: TreeItem) throws -> BlockRun {
        try decodeRun(item, named: "free space")
    }

    package func decodeHeldNodes(_ item: TreeItem) throws -> BlockRun {
        try decodeRun(item, named: "held nodes")
    }

    /// A by-size item: the run its key names, inside the volume's data blocks.
    package func decodeFreeBySize(_ item: TreeItem) throws -> BlockRun {
        let run = BlockRun(start: item.key.offset, count: item.key.object & ~Self.freeBySizeObjectBase)
        guard item.key.kind == Kind.freeBySize, item.key.object >= Self.freeBySizeObjectBase, item.value.isEmpty,
              run.count > 0, run.start >= superblock.firstAllocatableBlock, run.start < superblock.blockCount,
              run.count <= superblock.blockCount - run.start else {
            throw DecodingError(description: "free space by size entry \(item.key) is malformed or out of range")
        }
        return run
    }
}
