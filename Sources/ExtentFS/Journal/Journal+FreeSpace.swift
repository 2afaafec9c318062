import ExtentFSCore

extension Journal {
    /// Brings the tree's free space and held nodes (MetadataTree+FreeSpace) to what they are once
    /// the checkpoint being built is durable: free space over the ranges where file blocks
    /// changed and where the nodes the checkpoint before last released become free; held nodes
    /// to those this checkpoint's changes released. Then sets aside the nodes the commit will
    /// write and records them as used, until the tree has exactly as many dirty nodes as are set
    /// aside and lists every node it released: recording dirties nodes (copying a node releases
    /// the old one; a merge can leave fewer). That ends: each round either dirties a node not
    /// dirty before or settles, and the tree has finitely many; in practice it settles in a few
    /// rounds, the later ones touching leaves the first already dirtied. Caller holds
    /// checkpointLock.
    func recordSpace(_ changes: CheckpointChanges.Snapshot) throws {
        let freedWhenDurable = BlockRunSet(treeStorage.freedWhenDurable)
        let free = { [treeStorage] (range: BlockRun) -> [BlockRun] in
            treeStorage.freeRuns(within: range, fileBlocks: changes.fileBlocks, freedWhenDurable: freedWhenDurable)
        }
        try tree.replaceFreeSpace(over: changes.freeSpaceRuns + freedWhenDurable.runs, free: free)
        for _ in 0..<Journal.freeSpaceRounds {
            let held = treeStorage.heldByOlderCopy
            if held != treeStorage.recordedHeld {
                try tree.replaceHeldNodes(treeStorage.recordedHeld, with: held)
                treeStorage.recordedHeld = held
                continue
            }
            let needed = tree.tree.dirtyNodes - treeStorage.preparedCount
            if needed == 0 { return }
            let changed = needed > 0 ? try treeStorage.prepareNodes(needed) : treeStorage.unprepareNodes(-needed)
            try tree.replaceFreeSpace(over: changed, free: free)
        }
        throw ExtentFSError("the nodes of the checkpoint and the free space recording them did not settle in \(Journal.freeSpaceRounds) rounds",
                            errno: .ioError)
    }

    /// Far more than recording one allocation can take (a round dirties at most a few paths).
    static let freeSpaceRounds = 64
}
