import ExtentFSCore

/// A directory's entries change only through these, so that the changes are known for the log
/// (`unloggedEntryChanges`) and the next checkpoint (`checkpointEntryCookies`). The entry a
/// removal or retarget names is the one a lookup found (Metadata.entry: in memory or, for a
/// partial directory, the tree). Caller is in a transaction: exclusive, or shared on this directory.
extension Inode {
    func addEntry(name: [UInt8], ino: InodeNumber, type: FileType) {
        directory!.add(name: name, ino: ino, type: type)
        let entry = directory!.entry(named: name)!
        recordEntryChange(.set(name: name, entry: entry), cookie: entry.cookie)
    }

    func removeEntry(name: [UInt8], entry: Directory.Entry) {
        directory!.remove(name: name, entry: entry)
        recordEntryChange(.remove(name: name, cookie: entry.cookie), cookie: entry.cookie)
    }

    /// Points an existing name at another inode, keeping its cookie.
    func retargetEntry(name: [UInt8], entry: Directory.Entry, ino: InodeNumber, type: FileType) {
        directory!.retarget(name: name, entry: entry, ino: ino, type: type)
        var changed = entry
        changed.ino = ino
        changed.type = type
        recordEntryChange(.set(name: name, entry: changed), cookie: entry.cookie)
    }

    /// Past half the directory's size (and a few dozen), the whole directory is the smaller
    /// record, and the changes stop being kept: only for a complete directory, since a partial
    /// one cannot be written whole.
    private func recordEntryChange(_ change: Directory.Change, cookie: UInt64) {
        let complete = directory?.isComplete ?? true
        if checkpointEntryCookies != nil {
            checkpointEntryCookies!.insert(cookie)
            if complete, checkpointEntryCookies!.count > max(64, (directory?.count ?? 0) / 2) { checkpointEntryCookies = nil }
        }
        guard changes != nil, unloggedEntryChanges != nil else { return }
        unloggedEntryChanges!.append(change)
        if complete, unloggedEntryChanges!.count > max(64, (directory?.count ?? 0) / 2) { unloggedEntryChanges = nil }
    }
}
