import ExtentFSCore

/// Cross-checks a loaded checkpoint: every block used once (or as often as its reference count
/// says), every extent and checkpoint block inside the volume, directories consistent with the
/// inodes they name, link counts, reachability. Mount refuses an image with problems other than
/// orphans (which mount frees); fsck reports all of them.
///
/// It works on a compact summary of each inode (CheckInput), not on the inodes: mount gathers
/// the summary while it scans the tree and keeps no inode it does not need, fsck from what it
/// loaded. Summaries are kept in flat arrays sorted by inode number (no dictionary of a million
/// entries, no array per inode), so the check costs tens of bytes per inode while it runs.
enum Checker {
    struct Problem: CustomStringConvertible {
        var message: String
        /// An inode with no name: normal after a crash with unlinked files open; mount frees it.
        var isOrphan = false
        var description: String { message }
    }

    static func check(superblock: Superblock, loaded: LoadedCheckpoint) -> [Problem] {
        var input = CheckInput()
        for inode in loaded.inodes { input.add(inode) }
        var problems = check(superblock: superblock, nextInode: loaded.nextInode, checkpointRuns: loaded.checkpointRuns,
                             referenceCounts: loaded.referenceCounts, input: input)
        if let stored = loaded.storedVolume {
            problems += checkVolumeItems(stored, loaded: loaded).map { Problem(message: $0) }
        }
        problems += loaded.freeSpaceProblems.map { Problem(message: $0) }
        return problems
    }

    /// Format version 5's lists against what they summarize: the blocks files use against every
    /// extent, the inode count against the inodes, the orphan list against link counts (for
    /// inodes the log did not change since: the list is rewritten at the next checkpoint).
    private static func checkVolumeItems(_ stored: StoredVolumeItems, loaded: LoadedCheckpoint) -> [String] {
        var problems: [String] = []
        let used = BlockRunSet(loaded.inodes.flatMap { $0.extents.extents.map(\.physicalRun) })
        if used != stored.fileBlocks {
            let listed = stored.fileBlocks.runs.prefix(5).map(\.description).joined(separator: ", ")
            let found = used.runs.prefix(5).map(\.description).joined(separator: ", ")
            problems.append("the list of blocks files use does not match their extents (listed: \(listed.isEmpty ? "none" : listed); used: \(found.isEmpty ? "none" : found))")
        }
        if stored.inodeCount != UInt64(loaded.inodes.count) {
            problems.append("the inode count is \(stored.inodeCount) but the volume holds \(loaded.inodes.count) inodes")
        }
        let replayed = loaded.sinceCheckpoint.inodes
        let listed = Set(stored.orphans)
        for inode in loaded.inodes where !replayed.contains(inode.ino) && (inode.nlink == 0) != listed.contains(inode.ino) {
            problems.append(inode.nlink == 0 ? "inode \(inode.ino) has link count 0 but is not listed as an orphan"
                                             : "inode \(inode.ino) is listed as an orphan but has link count \(inode.nlink)")
        }
        let present = Set(loaded.inodes.map(\.ino))
        for ino in listed where !replayed.contains(ino) && !present.contains(ino) {
            problems.append("orphan \(ino) is listed but the volume does not hold it")
        }
        return Array(problems.prefix(1000))
    }

    static func check(superblock: Superblock, nextInode: InodeNumber, checkpointRuns: [BlockRun],
                      referenceCounts: ReferenceCounts, input gathered: CheckInput) -> [Problem] {
        var problems: [Problem] = []
        func report(_ message: String) { if problems.count < 1000 { problems.append(Problem(message: message)) } }
        var input = gathered
        input.sort()
        for message in input.problems { report(message) }

        let inodes = input.inodes
        for (index, inode) in inodes.enumerated() {
            if index > 0, inodes[index - 1].ino == inode.ino { report("inode \(inode.ino) appears twice") }
            if inode.ino >= nextInode { report("inode \(inode.ino) is not below the next inode number \(nextInode)") }
        }
        guard let rootIndex = input.index(of: FileSystem.rootInode), inodes[rootIndex].type == .directory else {
            report("the root directory (inode 1) is missing or not a directory")
            return problems
        }
        if inodes[rootIndex].parent != FileSystem.rootInode { report("the root directory's parent is \(inodes[rootIndex].parent), not itself") }

        checkSpace(superblock: superblock, checkpointRuns: checkpointRuns, referenceCounts: referenceCounts, uses: input.uses, report: report)

        // Names: count references to each inode, check entry types and directory parents.
        var references = [UInt32](repeating: 0, count: inodes.count)
        var subdirectories = [UInt32](repeating: 0, count: inodes.count)
        for (index, inode) in inodes.enumerated() where inode.type == .directory {
            for entry in input.entries[inode.entries] {
                guard let childIndex = input.index(of: entry.ino) else {
                    report("directory \(inode.ino) has an entry that names missing inode \(entry.ino)")
                    continue
                }
                let child = inodes[childIndex]
                if child.type != entry.type { report("directory \(inode.ino) entry for inode \(entry.ino) has the wrong type") }
                references[childIndex] &+= 1
                if child.type == .directory {
                    subdirectories[index] &+= 1
                    if child.parent != inode.ino { report("directory \(child.ino) is named in \(inode.ino) but its parent is \(child.parent)") }
                }
            }
        }
        for (index, inode) in inodes.enumerated() {
            let named = references[index]
            if inode.type == .directory {
                if inode.ino != FileSystem.rootInode && named != 1 { report("directory \(inode.ino) is named \(named) times, not once") }
                let expected = 2 &+ subdirectories[index]
                if inode.nlink != expected { report("directory \(inode.ino) has link count \(inode.nlink), expected \(expected)") }
            } else if named == 0 && inode.nlink == 0 {
                problems.append(Problem(message: "inode \(inode.ino) is an orphan (no name, link count 0)", isOrphan: true))
            } else if inode.nlink != named {
                report("inode \(inode.ino) has link count \(inode.nlink) but \(named) names")
            }
            if inode.type == .symlink && (inode.symlinkLength == 0 || inode.symlinkLength > FileSystem.maxSymlinkLength) {
                report("symlink \(inode.ino) has an invalid target length \(inode.symlinkLength)")
            }
        }
        checkReachability(input, rootIndex: rootIndex, report: report)
        if UInt64(inodes.count) > superblock.maxInodes {
            report("\(inodes.count) inodes exceed the volume's limit of \(superblock.maxInodes)")
        }
        return problems
    }

    /// Every block used by extents and the checkpoint lies in the data area and is used exactly
    /// as many times as the reference counts say (once when not listed).
    private static func checkSpace(superblock: Superblock, checkpointRuns: [BlockRun], referenceCounts: ReferenceCounts,
                                   uses extentUses: [CheckInput.Use], report: (String) -> Void) {
        let uses = checkpointRuns.map { CheckInput.Use(run: $0, ino: 0) } + extentUses
        for use in uses where use.run.start < superblock.firstAllocatableBlock || use.run.end > superblock.blockCount {
            report("\(use.ino == 0 ? "the checkpoint" : "inode \(use.ino)") uses blocks \(use.run) outside the data area")
        }
        // Sweep: at each boundary, how many uses cover the blocks up to the next boundary.
        var events: [(UInt64, Int)] = []
        events.reserveCapacity(uses.count * 2)
        for use in uses {
            events.append((use.run.start, 1))
            events.append((use.run.end, -1))
        }
        events.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        var depth = 0
        var previous: UInt64 = 0
        var shared: [ReferenceCounts.Entry] = []
        for (position, delta) in events {
            if depth > 1 && position > previous {
                let run = BlockRun(start: previous, count: position - previous)
                let count = UInt32(clamping: depth)
                if let last = shared.last, last.run.end == run.start, last.count == count {
                    shared[shared.count - 1].run.count += run.count
                } else {
                    shared.append(ReferenceCounts.Entry(run: run, count: count))
                }
            }
            depth += delta
            previous = position
        }
        let checkpointOverlap = checkpointRuns.contains { run in shared.contains { $0.run.overlaps(run) } }
        if checkpointOverlap { report("checkpoint blocks are also used by a file") }
        if shared != referenceCounts.entries {
            let found = shared.map { "\($0.run)x\($0.count)" }.prefix(5).joined(separator: ", ")
            let recorded = referenceCounts.entries.map { "\($0.run)x\($0.count)" }.prefix(5).joined(separator: ", ")
            report("shared blocks do not match the reference counts (in use: \(found.isEmpty ? "none" : found); recorded: \(recorded.isEmpty ? "none" : recorded))")
        }
    }

    private static func checkReachability(_ input: CheckInput, rootIndex: Int, report: (String) -> Void) {
        var seen = [Bool](repeating: false, count: input.inodes.count)
        seen[rootIndex] = true
        var queue = [rootIndex]
        while let index = queue.popLast() {
            for entry in input.entries[input.inodes[index].entries] {
                if let child = input.index(of: entry.ino), !seen[child] {
                    seen[child] = true
                    queue.append(child)
                }
            }
        }
        for (index, inode) in input.inodes.enumerated() where !seen[index] && inode.nlink > 0 {
            report("inode \(inode.ino) is not reachable from the root directory")
        }
    }
}

/// What the checker needs of each inode, gathered one inode at a time.
struct CheckInput {
    struct Summary {
        var ino: InodeNumber
        var type: FileType
        var nlink: UInt32
        var parent: InodeNumber
        var symlinkLength: Int
        /// A directory's entries, in `entries`.
        var entries: Range<Int>
    }
    struct Entry {
        var ino: InodeNumber
        var type: FileType
    }
    struct Use {
        var run: BlockRun
        /// 0: the checkpoint.
        var ino: InodeNumber
    }

    private(set) var inodes: [Summary] = []
    private(set) var entries: [Entry] = []
    private(set) var uses: [Use] = []
    /// Found while gathering (invalid entry names).
    private(set) var problems: [String] = []
    private var sorted = true

    mutating func add(_ inode: Inode) {
        let first = entries.count
        inode.directory?.forEach(after: 0) { name, entry in
            if name.isEmpty || name.count > FileSystem.maxNameLength || name.contains(0x2F) || name.contains(0) || Directory.isDotOrDotDot(name) {
                if problems.count < 1000 {
                    problems.append("directory \(inode.ino) has an invalid name \(String(decoding: name, as: UTF8.self).debugDescription)")
                }
            }
            entries.append(Entry(ino: entry.ino, type: entry.type))
            return true
        }
        for extent in inode.extents.extents { uses.append(Use(run: extent.physicalRun, ino: inode.ino)) }
        if let last = inodes.last, last.ino > inode.ino { sorted = false }
        inodes.append(Summary(ino: inode.ino, type: inode.type, nlink: inode.nlink, parent: inode.parent,
                              symlinkLength: inode.symlinkTarget.count, entries: first..<entries.count))
    }

    /// Summaries in inode-number order (stable: a duplicate stays next to its twin).
    mutating func sort() {
        guard !sorted else { return }
        inodes.sort { $0.ino < $1.ino }
        sorted = true
    }

    /// The summary of `ino` (the first, if it appears twice). Needs `sort()` first.
    func index(of ino: InodeNumber) -> Int? {
        var low = 0, high = inodes.count
        while low < high {
            let mid = (low + high) / 2
            if inodes[mid].ino < ino { low = mid + 1 } else { high = mid }
        }
        return low < inodes.count && inodes[low].ino == ino ? low : nil
    }
}
