/// Cross-checks a loaded checkpoint: every block used once (or as often as its reference count
/// says), every extent and checkpoint block inside the volume, directories consistent with the
/// inodes they name, link counts, reachability. Mount refuses an image with problems other than
/// orphans (which mount frees); fsck reports all of them.
enum Checker {
    struct Problem: CustomStringConvertible {
        var message: String
        /// An inode with no name: normal after a crash with unlinked files open; mount frees it.
        var isOrphan = false
        var description: String { message }
    }

    static func check(superblock: Superblock, loaded: LoadedCheckpoint) -> [Problem] {
        var problems: [Problem] = []
        func report(_ message: String) { if problems.count < 1000 { problems.append(Problem(message: message)) } }

        var inodes: [InodeNumber: Inode] = [:]
        for inode in loaded.inodes {
            if inodes[inode.ino] != nil { report("inode \(inode.ino) appears twice") }
            inodes[inode.ino] = inode
            if inode.ino >= loaded.nextInode { report("inode \(inode.ino) is not below the next inode number \(loaded.nextInode)") }
        }
        guard let root = inodes[FileSystem.rootInode], root.type == .directory else {
            report("the root directory (inode 1) is missing or not a directory")
            return problems
        }
        if root.parent != FileSystem.rootInode { report("the root directory's parent is \(root.parent), not itself") }

        checkSpace(superblock: superblock, loaded: loaded, report: report)

        // Names: count references to each inode, check entry types and directory parents.
        var references: [InodeNumber: UInt32] = [:]
        var subdirectories: [InodeNumber: UInt32] = [:]
        for inode in loaded.inodes where inode.type == .directory {
            inode.directory?.forEach(after: 0) { name, entry in
                if name.isEmpty || name.count > FileSystem.maxNameLength || name.contains(0x2F) || name.contains(0) || FileSystem.isDotOrDotDot(name) {
                    report("directory \(inode.ino) has an invalid name \(String(decoding: name, as: UTF8.self).debugDescription)")
                }
                guard let child = inodes[entry.ino] else {
                    report("directory \(inode.ino) entry \(String(decoding: name, as: UTF8.self).debugDescription) names missing inode \(entry.ino)")
                    return true
                }
                if child.type != entry.type { report("directory \(inode.ino) entry for inode \(entry.ino) has the wrong type") }
                references[entry.ino, default: 0] += 1
                if child.type == .directory {
                    subdirectories[inode.ino, default: 0] += 1
                    if child.parent != inode.ino { report("directory \(child.ino) is named in \(inode.ino) but its parent is \(child.parent)") }
                }
                return true
            }
        }
        for inode in loaded.inodes {
            let named = references[inode.ino] ?? 0
            if inode.type == .directory {
                if inode.ino != FileSystem.rootInode && named != 1 { report("directory \(inode.ino) is named \(named) times, not once") }
                let expected = 2 + (subdirectories[inode.ino] ?? 0)
                if inode.nlink != expected { report("directory \(inode.ino) has link count \(inode.nlink), expected \(expected)") }
            } else if named == 0 && inode.nlink == 0 {
                problems.append(Problem(message: "inode \(inode.ino) is an orphan (no name, link count 0)", isOrphan: true))
            } else if inode.nlink != named {
                report("inode \(inode.ino) has link count \(inode.nlink) but \(named) names")
            }
            if inode.type == .symlink && (inode.symlinkTarget.isEmpty || inode.symlinkTarget.count > FileSystem.maxSymlinkLength) {
                report("symlink \(inode.ino) has an invalid target length \(inode.symlinkTarget.count)")
            }
        }
        checkReachability(inodes: inodes, report: report)
        if UInt64(loaded.inodes.count) > superblock.maxInodes {
            report("\(loaded.inodes.count) inodes exceed the volume's limit of \(superblock.maxInodes)")
        }
        return problems
    }

    /// Every block used by extents and the checkpoint lies in the data area and is used exactly
    /// as many times as the reference counts say (once when not listed).
    private static func checkSpace(superblock: Superblock, loaded: LoadedCheckpoint, report: (String) -> Void) {
        struct Use { var run: BlockRun; var owner: String }
        var uses: [Use] = loaded.checkpointRuns.map { Use(run: $0, owner: "the checkpoint") }
        for inode in loaded.inodes {
            for extent in inode.extents.extents { uses.append(Use(run: extent.physicalRun, owner: "inode \(inode.ino)")) }
        }
        for use in uses where use.run.start < superblock.firstAllocatableBlock || use.run.end > superblock.blockCount {
            report("\(use.owner) uses blocks \(use.run) outside the data area")
        }
        // Sweep: at each boundary, how many uses cover the blocks up to the next boundary.
        var events: [(UInt64, Int)] = []
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
                if let last = shared.last, last.run.end == run.start, last.count == UInt32(depth) {
                    shared[shared.count - 1].run.count += run.count
                } else {
                    shared.append(ReferenceCounts.Entry(run: run, count: UInt32(depth)))
                }
            }
            depth += delta
            previous = position
        }
        let checkpointOverlap = loaded.checkpointRuns.contains { run in shared.contains { $0.run.overlaps(run) } }
        if checkpointOverlap { report("checkpoint blocks are also used by a file") }
        if shared != loaded.referenceCounts.entries {
            let found = shared.map { "\($0.run)x\($0.count)" }.prefix(5).joined(separator: ", ")
            let recorded = loaded.referenceCounts.entries.map { "\($0.run)x\($0.count)" }.prefix(5).joined(separator: ", ")
            report("shared blocks do not match the reference counts (in use: \(found.isEmpty ? "none" : found); recorded: \(recorded.isEmpty ? "none" : recorded))")
        }
    }

    private static func checkReachability(inodes: [InodeNumber: Inode], report: (String) -> Void) {
        var seen: Set<InodeNumber> = [FileSystem.rootInode]
        var queue: [InodeNumber] = [FileSystem.rootInode]
        while let ino = queue.popLast() {
            inodes[ino]?.directory?.forEach(after: 0) { _, entry in
                if inodes[entry.ino] != nil, seen.insert(entry.ino).inserted { queue.append(entry.ino) }
                return true
            }
        }
        for (ino, inode) in inodes where !seen.contains(ino) && inode.nlink > 0 {
            report("inode \(ino) is not reachable from the root directory")
        }
    }
}
