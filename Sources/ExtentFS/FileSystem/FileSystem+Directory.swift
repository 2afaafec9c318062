import SystemPackage

extension FileSystem {
    public func readdir(_ ino: InodeNumber, after cookie: UInt64, plus: Bool, _ emit: (DirectoryEntry, FileAttributes?) -> Bool) throws {
        try journal.shutdown.check()
        return try metadata.withLock {
            let directory = try directoryInode(ino)
            if cookie < 1 {
                let entry = DirectoryEntry(name: [0x2E], ino: ino, type: .directory, nextCookie: 1)
                guard emit(entry, plus ? directory.attributes(blockSize: blockSize) : nil) else { return }
            }
            if cookie < 2 {
                let parent = metadata.inodes[directory.parent] ?? directory
                let entry = DirectoryEntry(name: [0x2E, 0x2E], ino: parent.ino, type: .directory, nextCookie: 2)
                guard emit(entry, plus ? parent.attributes(blockSize: blockSize) : nil) else { return }
            }
            directory.directory!.forEach(after: max(cookie, 2)) { name, entry in
                let child = plus ? metadata.inodes[entry.ino] : nil
                let accepted = emit(DirectoryEntry(name: name, ino: entry.ino, type: entry.type, nextCookie: entry.cookie),
                                    child?.attributes(blockSize: blockSize))
                if accepted, let child { child.lookupCount += 1 }
                return accepted
            }
        }
    }
}
