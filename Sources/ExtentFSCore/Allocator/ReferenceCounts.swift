/// Reference counts of shared physical blocks (clone, dedupe): only blocks mapped more than once
/// are listed, as XFS's refcount btree does, so an unshared filesystem stores nothing. Sorted,
/// disjoint runs, adjacent runs with equal counts merged. Guarded by Metadata.lock, and in shared
/// transactions by Metadata.allocatorLock: a reader that decides by a count (copy on write or in
/// place) reads it and ChangeSet's unshared blocks in the same hold as a decrement changes both.
/// Counts go up only in a clone or dedupe, for blocks its source maps, with the source's inode
/// lock held (no write of the source decides meanwhile). Persisted in every checkpoint; fsck
/// recounts.
public struct ReferenceCounts: Sendable {
    public struct Entry: Equatable, Sendable {
        public var run: BlockRun
        public var count: UInt32

        package init(run: BlockRun, count: UInt32) {
            self.run = run
            self.count = count
        }
    }

    public private(set) var entries: [Entry] = []
    /// u64 first block, u64 block count, u32 count: an entry in a checkpoint.
    package static let encodedEntryBytes = 20
    /// Told of every changed range, and of blocks whose count fell to one (the log records the
    /// former; the latter are not written in place until that record is durable).
    package var changes: ChangeSet?
    /// Told how many entries there are after each change: they are in every checkpoint.
    package var metadataSpace: MetadataSpace? {
        didSet { metadataSpace?.referenceEntries = entries.count }
    }

    public init() {}
    package init(validated entries: [Entry]) { self.entries = entries }

    public var isEmpty: Bool { entries.isEmpty }

    private func firstIndex(endingAfter block: UInt64) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].run.end <= block { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The count of `block`: 1 when unlisted (the caller knows whether it is mapped at all).
    public func count(of block: UInt64) -> UInt32 {
        let index = firstIndex(endingAfter: block)
        if index < entries.count, entries[index].run.start <= block { return entries[index].count }
        return 1
    }

    /// `run` cut into pieces of constant count, in order.
    public func pieces(of run: BlockRun) -> [(run: BlockRun, count: UInt32)] {
        var result: [(BlockRun, UInt32)] = []
        var cursor = run.start
        var index = firstIndex(endingAfter: run.start)
        while cursor < run.end {
            if index < entries.count, entries[index].run.start <= cursor {
                let end = min(run.end, entries[index].run.end)
                result.append((BlockRun(start: cursor, count: end - cursor), entries[index].count))
                cursor = end
                index += 1
            } else {
                let end = index < entries.count ? min(run.end, entries[index].run.start) : run.end
                result.append((BlockRun(start: cursor, count: end - cursor), 1))
                cursor = end
            }
        }
        return result
    }

    /// One more mapping of every block of `run` (a clone or dedupe shares them).
    public mutating func increment(_ run: BlockRun) {
        rewrite(run) { $0 + 1 }
    }

    /// One mapping fewer; returns the runs no longer mapped at all, which the caller frees.
    public mutating func decrement(_ run: BlockRun) -> [BlockRun] {
        var freed: [BlockRun] = []
        var unshared: [BlockRun] = []
        for piece in pieces(of: run) {
            if piece.count == 2 { unshared.append(piece.run) }
            guard piece.count == 1 else { continue }
            if let last = freed.last, last.end == piece.run.start {
                freed[freed.count - 1].count += piece.run.count
            } else {
                freed.append(piece.run)
            }
        }
        if let changes, !unshared.isEmpty { changes.noteReferenceChange(run, unshared: unshared) }
        rewrite(run) { $0 - 1 }
        return freed
    }

    /// The entries over `run`, clipped to it: what the log records for a changed range.
    package func entries(within run: BlockRun) -> [Entry] {
        pieces(of: run).filter { $0.count >= 2 }.map { Entry(run: $0.run, count: $0.count) }
    }

    /// Log replay: the counts over `run` become exactly `replacement` (entries inside `run`).
    package mutating func replace(_ run: BlockRun, with replacement: [Entry]) {
        rewrite(run) { _ in 1 }
        for entry in replacement { rewrite(entry.run) { _ in entry.count } }
    }

    /// Replaces the counts over `run` by `transform(count)`, keeping only counts >= 2.
    private mutating func rewrite(_ run: BlockRun, _ transform: (UInt32) -> UInt32) {
        guard run.count > 0 else { return }
        changes?.noteReferenceChange(run, unshared: [])
        let replaced = pieces(of: run).compactMap { piece -> Entry? in
            guard piece.count > 0 else { return nil }
            let count = transform(piece.count)
            return count >= 2 ? Entry(run: piece.run, count: count) : nil
        }
        let first = firstIndex(endingAfter: run.start)
        var last = first
        while last < entries.count, entries[last].run.start < run.end { last += 1 }
        var keep: [Entry] = []
        if first < last, entries[first].run.start < run.start {
            keep.append(Entry(run: BlockRun(start: entries[first].run.start, count: run.start - entries[first].run.start), count: entries[first].count))
        }
        keep += replaced
        if first < last, entries[last - 1].run.end > run.end {
            keep.append(Entry(run: BlockRun(start: run.end, count: entries[last - 1].run.end - run.end), count: entries[last - 1].count))
        }
        // Merge with each other and with the neighbours outside the range.
        var lower = first
        var upper = last
        if lower > 0 { lower -= 1; keep.insert(entries[lower], at: 0) }
        if upper < entries.count { keep.append(entries[upper]); upper += 1 }
        var merged: [Entry] = []
        for entry in keep {
            if let previous = merged.last, previous.run.end == entry.run.start, previous.count == entry.count {
                merged[merged.count - 1].run.count += entry.run.count
            } else {
                merged.append(entry)
            }
        }
        entries.replaceSubrange(lower..<upper, with: merged)
        metadataSpace?.referenceEntries = entries.count
    }
}
