/// A set of blocks as sorted, disjoint, non-touching runs: the blocks files use (FreeSpace's
/// `fileBlocks`, kept in the metadata tree so that mount need not derive it from every extent).
/// Inserting blocks already in the set and removing blocks not in it change nothing, so the log's
/// allocation records replay idempotently over a checkpoint that already holds some of them.
package struct BlockRunSet: Equatable {
    package private(set) var runs: [BlockRun] = []

    package init() {}

    /// From runs in any order, possibly overlapping or touching.
    package init(_ runs: [BlockRun]) {
        self.runs = BlockRun.merged(runs)
    }

    package var blockCount: UInt64 { runs.reduce(0) { $0 + $1.count } }

    private func firstIndex(endingAfter block: UInt64) -> Int { runs.firstIndex(endingAfter: block) }

    package mutating func insert(_ run: BlockRun) {
        guard run.count > 0 else { return }
        // Runs touching or overlapping `run` join it: from the first ending at or after its start
        // to the last starting at or before its end.
        var first = firstIndex(endingAfter: run.start)
        if first > 0, runs[first - 1].end == run.start { first -= 1 }
        var last = first
        var merged = run
        while last < runs.count, runs[last].start <= run.end {
            let start = min(merged.start, runs[last].start)
            merged = BlockRun(start: start, count: max(merged.end, runs[last].end) - start)
            last += 1
        }
        runs.replaceSubrange(first..<last, with: [merged])
    }

    package mutating func remove(_ run: BlockRun) {
        guard run.count > 0 else { return }
        let first = firstIndex(endingAfter: run.start)
        var last = first
        var kept: [BlockRun] = []
        while last < runs.count, runs[last].start < run.end {
            let existing = runs[last]
            if existing.start < run.start { kept.append(BlockRun(start: existing.start, count: run.start - existing.start)) }
            if existing.end > run.end { kept.append(BlockRun(start: run.end, count: existing.end - run.end)) }
            last += 1
        }
        runs.replaceSubrange(first..<last, with: kept)
    }

    /// The parts of the set inside `range`, cut at its ends.
    package func runs(within range: BlockRun) -> [BlockRun] {
        var result: [BlockRun] = []
        var index = firstIndex(endingAfter: range.start)
        while index < runs.count, runs[index].start < range.end {
            let start = max(runs[index].start, range.start)
            result.append(BlockRun(start: start, count: min(runs[index].end, range.end) - start))
            index += 1
        }
        return result
    }

    /// The blocks of `range` in none of `sets`: one pass over their runs within it, however
    /// many (removing them one by one from a set would move its array at every step).
    package static func complement(of sets: [BlockRunSet], within range: BlockRun) -> BlockRunSet {
        let used = BlockRun.merged(sets.flatMap { $0.runs(within: range) })
        var result = BlockRunSet()
        var cursor = range.start
        for run in used {
            if run.start > cursor { result.runs.append(BlockRun(start: cursor, count: run.start - cursor)) }
            cursor = max(cursor, run.end)
        }
        if cursor < range.end { result.runs.append(BlockRun(start: cursor, count: range.end - cursor)) }
        return result
    }

    /// The blocks of this set not in `other`: one pass over both.
    package func subtracting(_ other: BlockRunSet) -> BlockRunSet {
        var result = BlockRunSet()
        var first = 0
        for run in runs {
            var start = run.start
            while first < other.runs.count, other.runs[first].end <= start { first += 1 }
            var index = first
            while index < other.runs.count, other.runs[index].start < run.end {
                if other.runs[index].start > start { result.runs.append(BlockRun(start: start, count: other.runs[index].start - start)) }
                start = max(start, other.runs[index].end)
                index += 1
            }
            if start < run.end { result.runs.append(BlockRun(start: start, count: run.end - start)) }
        }
        return result
    }

    /// Whether any block of `run` is in the set.
    package func intersects(_ run: BlockRun) -> Bool {
        let index = firstIndex(endingAfter: run.start)
        return index < runs.count && runs[index].start < run.end
    }
}
