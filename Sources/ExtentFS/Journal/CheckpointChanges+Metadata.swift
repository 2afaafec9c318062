import ExtentFSCore

// CheckpointChanges (ExtentFSCore/Journal/CheckpointChanges.swift) is the set of what changed
// since the last checkpoint; taking its snapshot reads the engine's Metadata and Inodes.

extension CheckpointChanges {
    /// The snapshot of what changed, and an empty set for the next checkpoint. Caller holds
    /// Metadata.lock.
    mutating func take(from metadata: Metadata) -> Snapshot {
        defer { self = CheckpointChanges(everything: false) }
        let numbers = everything ? Array(metadata.inodes.keys) : Array(inodes.union(metadata.changes.inodes))
        let volume = BlockRun(start: metadata.superblock.firstAllocatableBlock, count: metadata.superblock.blockCount - metadata.superblock.firstAllocatableBlock)
        let runs = everything ? [volume] : BlockRun.merged(referenceRuns + metadata.changes.referenceRuns)
        let fileBlockRanges = allFileBlocks ? [volume] : BlockRun.merged(fileBlockRuns + metadata.changes.fileBlockChanges.map(\.run))
        let images = numbers.sorted().map { ino -> (InodeNumber, InodeImage?) in
            guard let inode = metadata.inodes[ino] else { return (ino, nil) }
            var image = InodeImage(inode)
            if everything {
                image.changedEntryCookies = nil
                image.changedExtentRange = nil
            }
            // From here on the tree will hold this directory's entries, this file's extents, as
            // the image has them.
            if inode.type == .directory { inode.checkpointEntryCookies = [] }
            if inode.type == .regular { inode.extentsCheckpointed() }
            return (ino, image)
        }
        return Snapshot(nextInode: metadata.nextInode, inodes: images,
                        referenceRuns: runs, referenceCounts: metadata.referenceCounts,
                        fileBlockRuns: fileBlockRanges, fileBlocks: metadata.freeSpace.fileBlocks,
                        freeSpaceRuns: allFreeSpace ? [volume] : fileBlockRanges,
                        inodeCount: metadata.inodeCount, inodeBytes: metadata.space.inodeBytes)
    }
}
