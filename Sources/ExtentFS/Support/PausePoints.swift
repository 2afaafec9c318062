/// Test-only pause points: places inside a race window named by a seed, where a test can stop a
/// thread (its hook blocks) while another thread runs, to show the window is closed. Production
/// never installs a hook; the cost is one load of an optional per passage.
public enum PausePoint: String, Sendable {
    /// Read: pages created (locked), blocks not yet mapped for the fill.
    case readBeforeFill
    /// Read (a page fill or O_DIRECT): blocks mapped, not yet read from disk.
    case readAfterMapping
    /// Punch: the range's pages dropped, the extents not yet unmapped (seed 001's window).
    case punchAfterDroppingPages
    /// Dedupe: ranges compared equal, not yet remapped.
    case dedupeAfterCompare
    /// Writeback: pages of a batch locked and mapped, data not yet written.
    case writebackBeforeWrite
    /// Write-through: the range checked (no page cached, blocks this file's alone), its data not
    /// yet written.
    case writeThroughBeforeWrite
    /// Eviction: a page found unused (under the index lock), not yet removed from the index.
    case evictAfterUnusedCheck
    /// Checkpoint: the tree's new nodes written, the superblock not yet (the inode table still
    /// reads from the tree before it, which lacks what this checkpoint writes).
    case checkpointBeforeSuperblock
    /// A change charged for its metadata (Metadata.withMetadataCharged), not yet made: another
    /// request's charge must still see what this one took.
    case metadataChargedBeforeChange
    /// Rename: a directory moving to another parent found not to be one of its new ancestors,
    /// the entries not yet changed.
    case renameAfterAncestorWalk
}

extension FileSystem {
    /// Tests install this to stop threads at pause points. Set it before any concurrent use.
    public var pauseHook: ((PausePoint) -> Void)? {
        get { cache.pauseHook }
        set { cache.pauseHook = newValue }
    }

    @inline(__always)
    func pausePoint(_ point: PausePoint) {
        if let hook = cache.pauseHook { hook(point) }
    }
}
