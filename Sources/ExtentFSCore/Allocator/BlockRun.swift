/// A run of contiguous physical blocks.
public struct BlockRun: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var count: UInt64

    public init(start: UInt64, count: UInt64) {
        self.start = start
        self.count = count
    }
    public var end: UInt64 { start + count }
    public var description: String { "[\(start), +\(count))" }

    package func overlaps(_ other: BlockRun) -> Bool { start < other.end && other.start < end }

    /// The union of `runs` as disjoint runs, sorted (touching runs join).
    package static func merged(_ runs: [BlockRun]) -> [BlockRun] {
        var result: [BlockRun] = []
        for run in runs.sorted(by: { $0.start < $1.start }) where run.count > 0 {
            if let last = result.last, last.end >= run.start {
                result[result.count - 1].count = max(last.end, run.end) - last.start
            } else {
                result.append(run)
            }
        }
        return result
    }
}

extension Array where Element == BlockRun {
    /// In runs sorted and disjoint: the index of the first that ends after `block` (count if none).
    package func firstIndex(endingAfter block: UInt64) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if self[mid].end <= block { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
