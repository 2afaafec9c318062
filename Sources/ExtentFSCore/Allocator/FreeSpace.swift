/// Free physical blocks as a sorted array of disjoint, non-adjacent runs, and the blocks files
/// use (`fileBlocks`). Free space is not persisted: mount rebuilds it as "every block minus the
/// superblock area and log, the checkpoints' tree nodes and the blocks files use"; the blocks
/// files use are kept in the metadata tree (format version 5) and every change to them is in the
/// log record of its transaction (ChangeSet.fileBlockChanges), so mount reads them instead of
/// every extent, and fsck checks them against every extent. Guarded by Metadata.lock.
///
/// Blocks freed by a change are not reusable until the checkpoint that records the change is on
/// disk (`pendingFree`), or a crash would find another file's data in a block the old checkpoint
/// still maps. Delayed allocation reserves blocks at write time (`reserved`), so ENOSPC is
/// reported by write() and never at writeback (DESIGN.md rule 4).
package struct FreeSpace {
    package private(set) var runs: [BlockRun] = []
    package private(set) var freeBlocks: UInt64 = 0
    /// Blocks promised to delayed allocations, not yet allocated.
    package private(set) var reserved: UInt64 = 0
    /// What the metadata takes, for the blocks held back for the next checkpoints (written
    /// before the old ones are freed) and for what writeback of the promised blocks may add to
    /// it: current at every change, not only at commits.
    package var metadataSpace: MetadataSpace?
    package var metadataReserve: UInt64 { metadataSpace?.reserveBlocks(promisedDataBlocks: reserved) ?? 0 }
    package private(set) var pendingFree: [BlockRun] = []
    package private(set) var pendingFreeBlocks: UInt64 = 0
    /// Blocks file extents use (allocated for data and not yet released by a change), whatever
    /// their reference counts. Tree nodes are not in it.
    package private(set) var fileBlocks = BlockRunSet()
    /// Where changes to `fileBlocks` are noted for the log (nil: not a mounted volume's).
    package var changes: ChangeSet?
    /// Set when a block is freed twice or freed while free: the metadata contradicts itself (a
    /// damaged image that got past mount's checks). The journal shuts the volume down on it.
    package private(set) var inconsistency: String?

    /// Free space of a device whose used runs are `used` (any order, may touch, must not overlap).
    package init(firstBlock: UInt64, blockCount: UInt64, used: [BlockRun], fileBlocks: BlockRunSet = BlockRunSet()) {
        self.fileBlocks = fileBlocks
        var cursor = firstBlock
        for run in used.sorted(by: { $0.start < $1.start }) where run.count > 0 {
            if run.start > cursor { appendRun(BlockRun(start: cursor, count: run.start - cursor)) }
            cursor = max(cursor, run.end)
        }
        if cursor < blockCount { appendRun(BlockRun(start: cursor, count: blockCount - cursor)) }
        blockCountLimit = blockCount
    }

    /// The volume's block count: nothing at or past it is ever free.
    private var blockCountLimit: UInt64 = .max

    private mutating func appendRun(_ run: BlockRun) {
        runs.append(run)
        freeBlocks += run.count
    }

    /// Blocks a new reservation may take. (What its writeback may add to the metadata is held
    /// back once it is promised: one request overshoots by at most that, within the reserve's slack.)
    package var available: UInt64 {
        let spare = spareBlocks(countingPendingFrees: false)
        return spare > 0 ? UInt64(spare) : 0
    }

    /// Free blocks beyond every promise and the metadata reserve; negative when metadata grew
    /// into the reserve's slack (growth no request could refuse). Pending frees count where the
    /// caller's need can wait for the commit that releases them (metadata, statfs).
    package func spareBlocks(countingPendingFrees: Bool) -> Int64 {
        let free = freeBlocks + (countingPendingFrees ? pendingFreeBlocks : 0)
        return Int64(free) - Int64(reserved + metadataReserve)
    }

    package mutating func reserve(_ count: UInt64) -> Bool {
        guard count <= available else { return false }
        reserved += count
        return true
    }

    package mutating func unreserve(_ count: UInt64) {
        precondition(count <= reserved, "unreserving more than was reserved")
        reserved -= count
    }

    /// Allocates up to `count` blocks, preferring one run at or after `near`; may return fewer
    /// runs' worth only if the space is fragmented (the total is always `count` unless the disk
    /// holds fewer free blocks, in which case it returns what there is).
    /// `mappedNow`: the caller maps the blocks in this same transaction (they are file blocks from
    /// now on); false: it maps them in a later one, after writing their data, and calls
    /// `noteMapped` in that one (or `free` if it never does), so that no log record holds file
    /// blocks no extent maps.
    package mutating func allocate(_ count: UInt64, near: UInt64 = 0, mappedNow: Bool = true) -> [BlockRun] {
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
        if mappedNow { for run in result { noteFileBlocks(allocated: true, run) } }
        return result
    }

    /// Blocks `allocate(mappedNow: false)` gave out are mapped by the running transaction.
    package mutating func noteMapped(_ run: BlockRun) {
        noteFileBlocks(allocated: true, run)
    }

    private mutating func noteFileBlocks(allocated: Bool, _ run: BlockRun) {
        if allocated { fileBlocks.insert(run) } else { fileBlocks.remove(run) }
        changes?.noteFileBlocks(allocated: allocated, run)
    }

    /// Takes back blocks `allocate` gave out in the running transaction and that nothing maps
    /// (an operation that failed part way): free now, no longer file blocks.
    package mutating func unallocate(_ run: BlockRun) {
        noteFileBlocks(allocated: false, run)
        free(run)
    }

    /// One contiguous run of exactly `count` blocks, or nil: for the metadata tree's nodes, which
    /// are not file blocks (mount finds them from the trees themselves).
    package mutating func allocateContiguous(_ count: UInt64) -> BlockRun? {
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

    private func firstIndex(atOrAfter block: UInt64) -> Int { runs.firstIndex(endingAfter: block) }

    /// File blocks a change released: no longer file blocks, free at the next commit.
    package mutating func freeAfterCommit(_ run: BlockRun) {
        guard run.count > 0 else { return }
        noteFileBlocks(allocated: false, run)
        pendingFree.append(run)
        pendingFreeBlocks += run.count
    }

    /// Hands the pending frees to the commit that is about to record them.
    package mutating func takePendingFrees() -> [BlockRun] {
        defer {
            pendingFree = []
            pendingFreeBlocks = 0
        }
        return pendingFree
    }

    /// Makes blocks free now: the caller knows no durable metadata points at them. A run that is
    /// already free in part is left as it is and noted (`inconsistency`), never trapped on: only
    /// metadata that contradicts itself frees a block twice.
    package mutating func free(_ run: BlockRun) {
        guard run.count > 0 else { return }
        let index = firstIndex(atOrAfter: run.start)
        guard index == runs.count || runs[index].start >= run.end, index == 0 || runs[index - 1].end <= run.start,
              run.end <= blockCountLimit else {
            if inconsistency == nil { inconsistency = "blocks \(run) were freed while free (or past the volume)" }
            return
        }
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
