/// Reference counts of shared physical blocks (clone, dedupe): only blocks mapped more than once
/// are listed, as XFS's refcount btree does, so an unshared filesystem stores nothing. Sorted,
/// disjoint runs. Guarded by Metadata.lock. Persisted in every checkpoint; fsck recounts.
public struct ReferenceCounts: Sendable {
    public struct Entry: Equatable, Sendable {
        public var run: BlockRun
        public var count: UInt32
    }

    public private(set) var entries: [Entry] = []

    public init() {}
    init(validated entries: [Entry]) { self.entries = entries }

    /// The count of `block`: 1 when unlisted (the caller knows whether it is mapped at all).
    public func count(of block: UInt64) -> UInt32 {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].run.end <= block { low = mid + 1 } else { high = mid }
        }
        if low < entries.count, entries[low].run.start <= block { return entries[low].count }
        return 1
    }

    public var isEmpty: Bool { entries.isEmpty }
}
