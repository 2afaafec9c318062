import ExtentFSCore

/// A directory's entries in the metadata tree: each entry by cookie, kind `directoryEntry`, for
/// readdir; and, from format version 7, a name index, kind `nameIndex`, keyed by the name's hash
/// (NameHash, keyed with the volume's UUID), whose value lists the cookies of the entries whose
/// names hash there (u64 each, ascending; nearly always one), so that a lookup by name reads
/// two short paths of the tree, whatever the directory's size. Every value read is checked: an
/// index naming a cookie with no entry, or an entry whose name does not hash where it is
/// listed, is damage (EIO), never a wrong answer.
extension MetadataTree {
    static func nameIndexKey(_ directory: InodeNumber, hash: UInt64) -> TreeKey {
        TreeKey(object: directory, kind: Kind.nameIndex, offset: hash)
    }

    /// The most cookies one index value holds: past them a checkpoint could not store a name.
    var maxCookiesPerHash: Int { tree.maxValueSize / 8 }

    /// The entry named `name` in directory `directory`, as this tree holds it.
    func lookupEntry(in directory: InodeNumber, named name: [UInt8]) throws -> Directory.Entry? {
        let hash = nameHash(name)
        guard let value = try tree.lookup(Self.nameIndexKey(directory, hash: hash)) else { return nil }
        for cookie in try decodeIndex(value, directory: directory, hash: hash) {
            guard let stored = try storedEntry(of: directory, cookie: cookie) else {
                throw DecodingError(description: "directory \(directory)'s name index lists cookie \(cookie), which holds no entry")
            }
            guard nameHash(stored.name) == hash else {
                throw DecodingError(description: "directory \(directory)'s name index lists cookie \(cookie) under a hash its name does not have")
            }
            if stored.name == name { return stored.entry }
        }
        return nil
    }

    /// The entry at `cookie`, as this tree holds it.
    func storedEntry(of directory: InodeNumber, cookie: UInt64) throws -> (name: [UInt8], entry: Directory.Entry)? {
        let items = try tree.items(from: Self.entryKey(directory, cookie: cookie),
                                   through: Self.entryKey(directory, cookie: cookie, part: Self.entryParts - 1))
        guard !items.isEmpty else { return nil }
        return try decodeEntry(of: directory, cookie: cookie, parts: items)
    }

    /// The stored entries of `directory` with a cookie after `cookie` and below `end`, in cookie
    /// order, until `body` returns false.
    func forEachStoredEntry(of directory: InodeNumber, after cookie: UInt64, before end: UInt64,
                            _ body: ([UInt8], Directory.Entry) throws -> Bool) throws {
        // A cookie past the last one a directory can have (an lseek of the stream) lists nothing;
        // its key would wrap and list entries from the start again.
        guard cookie < end, end > Directory.firstEntryCookie, cookie < Directory.maxCookie - 1 else { return }
        let first = max(cookie + 1, Directory.firstEntryCookie)
        var cursor = tree.cursor(from: Self.entryKey(directory, cookie: first),
                                 through: Self.entryKey(directory, cookie: min(end, Directory.maxCookie) - 1, part: Self.entryParts - 1))
        var parts: [TreeItem] = []
        func flush() throws -> Bool {
            guard let head = parts.first else { return true }
            let decoded = try decodeEntry(of: directory, cookie: head.key.offset >> 2, parts: parts)
            parts.removeAll(keepingCapacity: true)
            return try body(decoded.name, decoded.entry)
        }
        while let item = try cursor.next() {
            if let head = parts.first, head.key.offset >> 2 != item.key.offset >> 2 {
                guard try flush() else { return }
            }
            parts.append(item)
        }
        _ = try flush()
    }

    /// One entry from its parts (in key order), checked as every entry read is.
    func decodeEntry(of directory: InodeNumber, cookie: UInt64, parts: [TreeItem]) throws -> (name: [UInt8], entry: Directory.Entry) {
        var bytes: [UInt8] = []
        for (index, part) in parts.enumerated() {
            guard part.key.offset & 3 == UInt64(index) else {
                throw DecodingError(description: "directory \(directory)'s entry at cookie \(cookie) misses part \(index)")
            }
            bytes += part.value
        }
        var reader = ByteReader(bytes)
        let child = try reader.u64()
        let rawType = try reader.u8()
        let name = try reader.raw(reader.remaining)
        guard FileSystem.isValidEntryName(name), child >= FileSystem.rootInode, child < CheckpointCodec.maxInodeNumber,
              let type = FileType(mode: UInt32(rawType) << 12),
              cookie >= Directory.firstEntryCookie, cookie < Directory.maxCookie else {
            throw DecodingError(description: "directory \(directory) has a malformed entry at cookie \(cookie)")
        }
        return (name, Directory.Entry(ino: child, type: type, cookie: cookie))
    }

    /// An index value: ascending cookies, at least one.
    func decodeIndex(_ value: [UInt8], directory: InodeNumber, hash: UInt64) throws -> [UInt64] {
        guard !value.isEmpty, value.count % 8 == 0 else {
            throw DecodingError(description: "directory \(directory)'s name index at hash \(hash) is malformed")
        }
        var reader = ByteReader(value)
        var cookies: [UInt64] = []
        while reader.remaining > 0 {
            let cookie = try reader.u64()
            guard cookie >= Directory.firstEntryCookie, cookie < Directory.maxCookie, cookies.last.map({ $0 < cookie }) ?? true else {
                throw DecodingError(description: "directory \(directory)'s name index at hash \(hash) lists an invalid cookie \(cookie)")
            }
            cookies.append(cookie)
        }
        return cookies
    }

    static func encodeIndex(_ cookies: [UInt64]) -> [UInt8] {
        var writer = ByteWriter(capacity: 8 * cookies.count)
        for cookie in cookies.sorted() { writer.u64(cookie) }
        return writer.bytes
    }

    // MARK: writing

    /// The entries at `changed` cookies become what `directory` holds there, and the name
    /// index follows (nil: every entry and the whole index are rewritten, and stored entries
    /// the directory does not hold go; only a complete directory can be written so).
    func writeEntries(of ino: InodeNumber, _ directory: Directory, changed: Set<UInt64>?) throws {
        guard let changed else {
            guard directory.isComplete else {
                throw DecodingError(description: "directory \(ino) holds only its changed entries but was to be written whole")
            }
            try writeAllEntries(of: ino, directory)
            return
        }
        for cookie in changed.sorted() {
            let now = directory.entry(atCookie: cookie)
            let stored = try storedEntry(of: ino, cookie: cookie)
            if stored?.name != now?.name {
                if let stored { try removeFromIndex(ino, name: stored.name, cookie: cookie) }
                if let now { try addToIndex(ino, name: now.name, cookie: cookie) }
            }
            try writeEntryParts(of: ino, cookie: cookie, now)
        }
    }

    private func writeAllEntries(of ino: InodeNumber, _ directory: Directory) throws {
        for kind in [Kind.directoryEntry, Kind.nameIndex] {
            let stored = try tree.items(from: TreeKey(object: ino, kind: kind, offset: 0), through: TreeKey(object: ino, kind: kind, offset: .max))
            for item in stored { _ = try tree.remove(item.key) }
        }
        var index: [UInt64: [UInt64]] = [:]
        var failure: (any Error)?
        directory.forEach(after: 0) { name, entry in
            do {
                try writeEntryParts(of: ino, cookie: entry.cookie, (name, entry))
                index[nameHash(name), default: []].append(entry.cookie)
                return true
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        for (hash, cookies) in index {
            guard cookies.count <= maxCookiesPerHash else { throw TreeError.valueTooLarge(size: 8 * cookies.count, limit: tree.maxValueSize) }
            try tree.insert(Self.nameIndexKey(ino, hash: hash), Self.encodeIndex(cookies))
        }
    }

    private func writeEntryParts(of ino: InodeNumber, cookie: UInt64, _ entry: (name: [UInt8], entry: Directory.Entry)?) throws {
        let parts = entry.map { Self.entryParts($0.name, $0.entry, maxPiece: tree.maxValueSize) } ?? []
        for part in 0..<Self.entryParts {
            let key = Self.entryKey(ino, cookie: cookie, part: part)
            if part < parts.count {
                try tree.insert(key, parts[Int(part)])
            } else {
                _ = try tree.remove(key)
            }
        }
    }

    private func addToIndex(_ ino: InodeNumber, name: [UInt8], cookie: UInt64) throws {
        let hash = nameHash(name)
        let key = Self.nameIndexKey(ino, hash: hash)
        var cookies = try tree.lookup(key).map { try decodeIndex($0, directory: ino, hash: hash) } ?? []
        guard !cookies.contains(cookie) else { return }
        cookies.append(cookie)
        guard cookies.count <= maxCookiesPerHash else { throw TreeError.valueTooLarge(size: 8 * cookies.count, limit: tree.maxValueSize) }
        try tree.insert(key, Self.encodeIndex(cookies))
    }

    private func removeFromIndex(_ ino: InodeNumber, name: [UInt8], cookie: UInt64) throws {
        let hash = nameHash(name)
        let key = Self.nameIndexKey(ino, hash: hash)
        guard let value = try tree.lookup(key) else { return }
        let cookies = try decodeIndex(value, directory: ino, hash: hash).filter { $0 != cookie }
        if cookies.isEmpty {
            _ = try tree.remove(key)
        } else {
            try tree.insert(key, Self.encodeIndex(cookies))
        }
    }
}
