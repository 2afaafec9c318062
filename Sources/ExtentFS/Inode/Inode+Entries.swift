/// A directory's entries change only through these, so that the changes are known for the log
/// (`unloggedEntryChanges`) and the next checkpoint (`checkpointEntryCookies`). Caller holds
/// Metadata.lock, in a transaction.
extension Inode {
    func addEntry(name: [UInt8], ino: InodeNumber, type: FileType) {
        directory!.add(name: name, ino: ino, type: type)
        let entry = directory!.entry(named: name)!
        recordEntryChange(.set(name: name, entry: entry), cookie: entry.cookie)
    }

    func removeEntry(name: [UInt8]) {
        guard let removed = directory!.remove(name: name) else { return }
        recordEntryChange(.remove(name: name), cookie: removed.cookie)
    }

    /// Points an existing name at another inode, keeping its cookie.
    func retargetEntry(name: [UInt8], ino: InodeNumber, type: FileType) {
        directory!.retarget(name: name, ino: ino, type: type)
        if let entry = directory!.entry(named: name) { recordEntryChange(.set(name: name, entry: entry), cookie: entry.cookie) }
    }

    /// Past half the directory's size (and a few dozen), the whole directory is the smaller
    /// record, and the changes stop being kept.
    private func recordEntryChange(_ change: Directory.Change, cookie: UInt64) {
        if checkpointEntryCookies != nil {
            checkpointEntryCookies!.insert(cookie)
            if checkpointEntryCookies!.count > max(64, (directory?.count ?? 0) / 2) { checkpointEntryCookies = nil }
        }
        guard changes != nil, unloggedEntryChanges != nil else { return }
        unloggedEntryChanges!.append(change)
        if unloggedEntryChanges!.count > max(64, (directory?.count ?? 0) / 2) { unloggedEntryChanges = nil }
    }
}
