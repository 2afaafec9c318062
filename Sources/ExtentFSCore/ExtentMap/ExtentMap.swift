/// A file's logical-to-physical map: disjoint extents sorted by logical block. Lookup is a binary
/// search, O(log n); changes cost what they touch plus one array shift. Guarded by Metadata.lock.
///
/// Each map also says what its latest change was (`stamp`, `latestChange`; ExtentMapChange.swift),
/// so that the inode holding it can follow which logical range changed since the last checkpoint
/// (Inode+ExtentChanges.swift) without comparing maps.
public struct ExtentMap: Sendable {
    public private(set) var extents: [FileExtent] = []
    /// Blocks mapped in any state (written, unwritten, delayed): what st_blocks counts.
    public private(set) var mappedBlocks: UInt64 = 0
    /// Names these extents. Invariant: a new map, and every mutating method that changes the
    /// extents, takes a stamp no map had before (ExtentMapChange.nextStamp); so two maps with
    /// the same stamp hold the same extents (copies of one value, unchanged since).
    package private(set) var stamp = ExtentMapChange.nextStamp()
    /// The latest change: the stamp the map had just before it and a range holding every extent
    /// it added or removed. nil for a map that has not changed since it was made.
    package private(set) var latestChange: ExtentMapChange?

    public init() {}

    package init(validated extents: [FileExtent]) {
        self.extents = extents
        mappedBlocks = extents.reduce(0) { $0 + $1.length }
    }

    /// The extents just changed within `range` (every extent added or removed lies in it): a
    /// new stamp, and the change from the old one. Each public mutating method calls this once
    /// per change it makes; `replace` then joins its two into one.
    private mutating func recordChange(within range: Range<UInt64>) {
        latestChange = ExtentMapChange(from: stamp, range: range)
        stamp = ExtentMapChange.nextStamp()
    }

    /// Index of the first extent whose end is past `block`.
    package func firstIndex(endingAfter block: UInt64) -> Int {
        var low = 0
        var high = extents.count
        while low < high {
            let mid = (low + high) / 2
            if extents[mid].logicalEnd <= block { low = mid + 1 } else { high = mid }
        }
        return low
    }

    public enum Mapping: Equatable {
        /// `length` blocks from the queried block are this (clipped) extent.
        case mapped(FileExtent)
        /// A hole from the queried block for `length` blocks (UInt64.max - block when unbounded).
        case hole(length: UInt64)
    }

    public func lookup(_ block: UInt64) -> Mapping {
        let index = firstIndex(endingAfter: block)
        guard index < extents.count else { return .hole(length: UInt64.max - block) }
        let extent = extents[index]
        if extent.logical <= block { return .mapped(extent.clipped(from: block, to: extent.logicalEnd)) }
        return .hole(length: extent.logical - block)
    }

    /// Extents (clipped) overlapping [from, to), in order.
    public func extents(from: UInt64, to: UInt64) -> [FileExtent] {
        var result: [FileExtent] = []
        var index = firstIndex(endingAfter: from)
        while index < extents.count, extents[index].logical < to {
            result.append(extents[index].clipped(from: from, to: to))
            index += 1
        }
        return result
    }

    /// Unmaps [from, to) and returns what was mapped there (clipped), for the caller to free.
    @discardableResult
    public mutating func remove(from: UInt64, to: UInt64) -> [FileExtent] {
        guard from < to else { return [] }
        let first = firstIndex(endingAfter: from)
        var last = first
        while last < extents.count, extents[last].logical < to { last += 1 }
        guard first < last else { return [] }
        // The extents cut or dropped, and the pieces of them kept, all lie in their hull.
        let touched = extents[first].logical..<extents[last - 1].logicalEnd
        var removed: [FileExtent] = []
        var keep: [FileExtent] = []
        for extent in extents[first..<last] {
            removed.append(extent.clipped(from: from, to: to))
            if extent.logical < from { keep.append(extent.clipped(from: extent.logical, to: from)) }
            if extent.logicalEnd > to { keep.append(extent.clipped(from: to, to: extent.logicalEnd)) }
        }
        extents.replaceSubrange(first..<last, with: keep)
        for extent in removed { mappedBlocks -= extent.length }
        recordChange(within: touched)
        return removed
    }

    /// Maps a range that is a hole now; merges with contiguous neighbours.
    public mutating func insert(_ extent: FileExtent) {
        guard extent.length > 0 else { return }
        let index = firstIndex(endingAfter: extent.logical)
        precondition(index == extents.count || extents[index].logical >= extent.logicalEnd,
                     "inserting over a mapped range")
        mappedBlocks += extent.length
        var merged = extent
        var lower = index
        var upper = index
        if lower > 0, extents[lower - 1].canMerge(with: merged) {
            lower -= 1
            merged = FileExtent(logical: extents[lower].logical, length: extents[lower].length + merged.length,
                                physical: extents[lower].physical, state: merged.state)
        }
        if upper < extents.count, merged.canMerge(with: extents[upper]) {
            merged.length += extents[upper].length
            upper += 1
        }
        extents.replaceSubrange(lower..<upper, with: [merged])
        // The neighbours merged in lie within the merged extent.
        recordChange(within: merged.logical..<merged.logicalEnd)
    }

    /// Replaces whatever maps [extent.logical, extent.logicalEnd) with `extent`; returns the old.
    @discardableResult
    public mutating func replace(with extent: FileExtent) -> [FileExtent] {
        let before = stamp
        let old = remove(from: extent.logical, to: extent.logicalEnd)
        let removedRange = stamp == before ? nil : latestChange?.range
        insert(extent)
        // One change from `before`, so that the inode sees one step (Inode+ExtentChanges.swift).
        if stamp != before, let inserted = latestChange?.range {
            let range = removedRange.map { min($0.lowerBound, inserted.lowerBound)..<max($0.upperBound, inserted.upperBound) } ?? inserted
            latestChange = ExtentMapChange(from: before, range: range)
        }
        return old
    }

    /// Moves every extent at or after `block` by `delta` blocks (collapse: negative; insert:
    /// positive). The caller has made [block + delta, block) unmapped for a collapse, and split
    /// any extent crossing `block`. O(extents after `block`).
    public mutating func shift(from block: UInt64, by delta: Int64) {
        var index = firstIndex(endingAfter: block)
        precondition(index == extents.count || extents[index].logical >= block, "shifting across a split point")
        let first = index
        guard first < extents.count else { return }
        let oldStart = extents[first].logical, oldEnd = endBlock
        while index < extents.count {
            extents[index].logical = UInt64(Int64(extents[index].logical) + delta)
            index += 1
        }
        var lower = min(oldStart, extents[first].logical)
        // The extents just before and at the seam may now be contiguous.
        if first > 0, extents[first - 1].canMerge(with: extents[first]) {
            lower = extents[first - 1].logical
            extents[first - 1].length += extents[first].length
            extents.remove(at: first)
        }
        // Every extent from `first` on moved, within the old and the new positions' hull.
        recordChange(within: lower..<max(oldEnd, endBlock))
    }

    /// Splits the extent crossing `block`, if any, so that an extent starts at `block`.
    public mutating func split(at block: UInt64) {
        let index = firstIndex(endingAfter: block)
        guard index < extents.count, extents[index].logical < block else { return }
        let extent = extents[index]
        extents[index] = extent.clipped(from: extent.logical, to: block)
        extents.insert(extent.clipped(from: block, to: extent.logicalEnd), at: index + 1)
        // The mapping is the same, but the extents are not: the tree stores extents.
        recordChange(within: extent.logical..<extent.logicalEnd)
    }

    /// The logical block just past the last mapped block (0 when empty).
    public var endBlock: UInt64 { extents.last?.logicalEnd ?? 0 }
}
