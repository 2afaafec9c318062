/// Free physical blocks as a sorted array of disjoint, non-adjacent runs. Not persisted: mount
/// rebuilds it as "every block minus the superblock area, the checkpoint and all extents", and
/// fsck checks the same. Guarded by Metadata.lock.
///
/// Blocks freed by a change are not reusable until the checkpoint that records the change is on
/// disk (`pendingFree`), or a crash would find another file's data in a block the old checkpoint
/// still maps. Delayed allocation reserves blocks at write time (`reserved`), so ENOSPC is
/// reported by write() and never at writeback (DESIGN.md rule 4).
struct FreeSpace {
    private(set) var runs: [BlockRun] = []
    private(set) var freeBlocks: UInt64 = 0
    /// Blocks promised to delayed allocations, not yet allocated.
    private(set) var reserved: UInt64 = 0
    /// What the metadata takes, for the blocks held back for the next checkpoints (written
    /// before the old ones are freed) and for what writeback of the promised blocks may add to
    /// it: current at every change, not only at commits.
    var metadataSpace: MetadataSpace?
    var metadataReserve: UInt64 { metadataSpace?.reserveBlocks(promisedDataBlocks: reserved) ?? 0 }
    private(set) var pendingFree: [BlockRun] = []
    private(set) var pendingFreeBlocks: UInt64 = 0

    /// Free space of a device whose used runs are `used` (any order, may touch, must not overlap).
    init(firstBlock: UInt64, blockCount: UInt64, used: [BlockRun]) {
        var cursor = firstBlock
        for run in used.sorted(by: { $0.start < $1.start }) where run.count > 0 {
            if run.start > cursor { appendRun(BlockRun(start: cursor, count: run.start - cursor)) }
            cursor = max(cursor, run.end)
        }
        if cursor < blockCount { appendRun(BlockRun(start: cursor, count: blockCount - cursor)) }
    }

    private mutating func appendRun(_ run: BlockRun) {
        runs.append(run)
        freeBlocks += run.count
    }

    /// Blocks a new reservation may take. (What its writeback may add to the metadata is held
    /// back once it is promised: one request overshoots by at most that, within the reserve's slack.)
    var available: UInt64 {
        let spare = spareBlocks(countingPendingFrees: false)
        return spare > 0 ? UInt64(spare) : 0
    }

    /// Free blocks beyond every promise and the metadata reserve; negative when metadata grew
    /// into the reserve's slack (growth no request could refuse). Pending frees count where the
    /// caller's need can wait for the commit that releases them (metadata, statfs).
    func spareBlocks(countingPendingFrees: Bool) -> Int64 {
        let free = freeBlocks + (countingPendingFrees ? pendingFreeBlocks : 0)
        return Int64(free) - Int64(reserved + metadataReserve)
    }

    mutating func reserve(_ count: UInt64) -> Bool {
        guard count <= available else { return false }
        reserved += count
        return true
    }

    mutating func unreserve(_ count: UInt64) {
        precondition(count <= reserved, "unreserving more than was reserved")
        reserved -= count
    }

    /// Allocates up to `count` blocks, preferring one run at or after `near`; may return fewer
    /// runs' worth only if the space is fragmented (the total is always `count` unless the disk
    /// holds fewer free blocks, in which case it returns what there is).
    mutating func allocate(_ count: UInt64, near: UInt64 = 0) -> [BlockRun] {
        var result: [BlockRun] = []
        var needed = count
        while needed > 0, !runs.isEmpty {
            let index = bestRunIndex(for: needed, near: near)
            let take = min(needed, runs[index].count)
            result.append(BlockRun(start: runs[index].start, count: take))
            runs[index].start += take
            runs[index].count -= take
            if runs[index].count == 0 { runs.remove(at: index) }
            freeBlocks -= take
            needed -= take
        }
        return result
    }

    /// One contiguous run of exactly `count` blocks, or nil.
    mutating func allocateContiguous(_ count: UInt64) -> BlockRun? {
        guard let index = runs.firstIndex(where: { $0.count >= count }) else { return nil }
        let run = BlockRun(start: runs[index].start, count: count)
        runs[index].start += count
        runs[index].count -= count
        if runs[index].count == 0 { runs.remove(at: index) }
        freeBlocks -= count
        return run
    }

    /// A run large enough at or after `near`, else the first large enough, else the largest.
    private func bestRunIndex(for count: UInt64, near: UInt64) -> Int {
        let start = firstIndex(atOrAfter: near)
        if let index = runs[start...].firstIndex(where: { $0.count >= count }) { return index }
        if let index = runs[..<start].firstIndex(where: { $0.count >= count }) { return index }
        var largest = 0
        for index in runs.indices where runs[index].count > runs[largest].count { largest = index }
        return largest
    }

    private func firstIndex(atOrAfter block: UInt64) -> Int {
        var low = 0
        var high = runs.count
        while low < high {
            let mid = (low + high) / 2
            if runs[mid].end <= block { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Frees at the next commit.
    mutating func freeAfterCommit(_ run: BlockRun) {
        guard run.count > 0 else { return }
        pendingFree.append(run)
        pendingFreeBlocks += run.count
    }

    /// Hands the pending frees to the commit that is about to record them.
    mutating func takePendingFrees() -> [BlockRun] {
        defer {
            pendingFree = []
            pendingFreeBlocks = 0
        }
        return pendingFree
    }

    /// Makes blocks free now: the caller knows no durable metadata points at them.
    mutating func free(_ run: BlockRun) {
        guard run.count > 0 else { return }
        let index = firstIndex(atOrAfter: run.start)
        precondition(index == runs.count || runs[index].start >= run.end, "double free of \(run)")
        precondition(index == 0 || runs[index - 1].end <= run.start, "double free of \(run)")
        freeBlocks += run.count
        let mergesLeft = index > 0 && runs[index - 1].end == run.start
        let mergesRight = index < runs.count && runs[index].start == run.end
        switch (mergesLeft, mergesRight) {
        case (true, true):
            runs[index - 1].count += run.count + runs[index].count
            runs.remove(at: index)
        case (true, false):
            runs[index - 1].count += run.count
        case (false, true):
            runs[index].start = run.start
            runs[index].count += run.count
        case (false, false):
            runs.insert(run, at: index)
        }
    }
}
