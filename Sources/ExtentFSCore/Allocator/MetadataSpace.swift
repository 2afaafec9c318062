/// Metadata is charged to space: what a checkpoint of the metadata would take right now, kept
/// current as it changes (each inode adds its encoded size as it changes, Inode.recount; the
/// reference counts their entries), and the blocks held back for it. Guarded by Metadata.lock,
/// but for `inodeBytes` and `referenceEntries`, which are atomic: inodes recount themselves in
/// shared transactions too, several at once (Metadata.sharedTransaction), and a truncate there
/// lowers reference counts.
///
/// Kept current rather than learned at the next commit: a user can add a great deal of
/// metadata between two commits (the security issue's 1,500 values of 64 KiB in 0.2 s), and
/// if only the commit found out that it does not fit, every change since the last commit, of
/// every user, would be lost. So the reserve grows with each change, the next request that does
/// not fit gets ENOSPC (Metadata.chargeMetadata), and a commit never learns first.
import Synchronization

package final class MetadataSpace: @unchecked Sendable {
    package let blockSize: UInt64
    /// Room for what grows past a check: a request's own promise of data (the writeback room
    /// for a 1 MiB write is at most 180 KiB, at 512-byte blocks) and the cleanup pool. At least
    /// 64 blocks and 256 KiB.
    package let slackBlocks: UInt64
    /// The sum of every inode's encoded size (Inode.encodedSizeEstimate).
    package var inodeBytes: Int { inodeByteCount.load(ordering: .relaxed) }
    private let inodeByteCount = Atomic<Int>(0)
    package func addInodeBytes(_ delta: Int) { inodeByteCount.wrappingAdd(delta, ordering: .relaxed) }
    /// Stored after the change it counts has noted the blocks it unshared (ReferenceCounts), so
    /// a reader with no lock that sees it zero sees those too (Metadata.noBlockIsShared).
    package var referenceEntries: Int {
        get { referenceEntryCount.load(ordering: .acquiring) }
        set { referenceEntryCount.store(newValue, ordering: .releasing) }
    }
    private let referenceEntryCount = Atomic<Int>(0)
    /// Charged by requests whose change has not counted itself yet (Metadata.chargePending).
    package var pendingBytes: Int { pendingByteCount.load(ordering: .relaxed) }
    private let pendingByteCount = Atomic<Int>(0)
    package func addPendingBytes(_ delta: Int) { pendingByteCount.wrappingAdd(delta, ordering: .relaxed) }
    /// Blocks the checkpoints of both superblock slots occupy (each once): the tree, and the
    /// nodes it replaced that the older copy still reaches (TreeStorage.heldBlocks).
    package var heldBlocks: UInt64 = 0

    package init(blockSize: Int) {
        self.blockSize = UInt64(blockSize)
        slackBlocks = max(64, (256 << 10 + self.blockSize - 1) / self.blockSize)
    }

    /// Blocks the metadata tree of the metadata as it is now takes: its items' bytes twice over
    /// (nodes split half full; slots and headers), and a few for the path to the root.
    package var checkpointBlocks: UInt64 {
        let bytes = 24 + UInt64(max(0, inodeBytes)) + UInt64(max(0, pendingBytes)) + 8
            + UInt64(referenceEntries) * UInt64(ReferenceCounts.encodedEntryBytes)
        return (2 * bytes + blockSize - 1) / blockSize + 8
    }

    /// Blocks no data may take: room for three checkpoints of the current metadata (two kept so
    /// either superblock copy can be mounted, one being written) less what the two kept ones
    /// already hold, and never less than one checkpoint (after a mass delete the kept ones are
    /// large and the next is small, but it must still find room when data has filled the rest),
    /// plus slack. So free space shrinks as metadata grows, and a checkpoint replacing an older
    /// one leaves what statfs reports unchanged.
    /// Plus, per block promised to dirty data (`promisedDataBlocks`), room for what its
    /// writeback adds to the metadata with no request left to refuse it.
    package func reserveBlocks(promisedDataBlocks: UInt64) -> UInt64 {
        let needed = checkpointBlocks
        let forGrowth = 3 * needed + slackBlocks
        let forCheckpoints = max(forGrowth > heldBlocks ? forGrowth - heldBlocks : 0, needed + slackBlocks)
        return forCheckpoints + (promisedDataBlocks * MetadataSpace.writebackGrowthPerBlock + blockSize - 1) / blockSize
    }

    /// What writeback of one dirty block may add: a delayed extent allocated in fragments (an
    /// extent per block at worst), or a copy on write in the middle of a shared extent (two
    /// more extents, two more reference-count entries).
    package static let writebackGrowthPerBlock = UInt64(2 * FileExtent.encodedBytes + 2 * ReferenceCounts.encodedEntryBytes)

    /// What `bytes` more of metadata adds to the reserve, at most.
    package func reserveGrowth(forBytes bytes: Int) -> UInt64 {
        3 * ((UInt64(max(0, bytes)) + blockSize - 1) / blockSize) + 3
    }

    /// Of the slack, what operations that give space back (punch, collapse, dedupe) may use when
    /// data has taken everything else, so a full volume can still be cleaned up (as XFS lets
    /// such transactions dip into its reserve pool). The rest is for growth no request can refuse.
    package var cleanupPoolBlocks: UInt64 { slackBlocks / 4 }
}
