/// A directory's entries change only through these, so that the changes are known for the log
/// (`unloggedEntryChanges`). Caller holds Metadata.lock, in a transaction.
extension Inode {
    func addEntry(name: [UInt8], ino: InodeNumber, type: FileType) {
        directory!.add(name: name, ino: ino, type: type)
        recordEntryChange(.set(name: name, entry: directory!.entry(named: name)!))
    }

    func removeEntry(name: [UInt8]) {
        guard directory!.remove(name: name) != nil else { return }
        recordEntryChange(.remove(name: name))
    }

    /// Points an existing name at another inode, keeping its cookie.
    func retargetEntry(name: [UInt8], ino: InodeNumber, type: FileType) {
        directory!.retarget(name: name, ino: ino, type: type)
        if let entry = directory!.entry(named: name) { recordEntryChange(.set(name: name, entry: entry)) }
    }

    /// Past half the directory's size (and a few dozen), the whole directory is the smaller
    /// record, and the changes stop being kept.
    private func recordEntryChange(_ change: Directory.Change) {
        guard changes != nil, unloggedEntryChanges != nil else { return }
        unloggedEntryChanges!.append(change)
        if unloggedEntryChanges!.count > max(64, (directory?.count ?? 0) / 2) { unloggedEntryChanges = nil }
    }
}
