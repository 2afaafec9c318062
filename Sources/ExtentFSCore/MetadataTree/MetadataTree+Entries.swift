/// A directory's entries in the metadata tree: each entry by cookie, kind `directoryEntry`, for
/// readdir; and, from format version 7, a name index, kind `nameIndex`, keyed by the name's hash
/// (NameHash, keyed with the volume's UUID). From version 9 the index's value holds the entries
/// themselves, as btrfs's DIR_ITEM does (`IndexRecord`): a lookup by name reads one short path
/// of the tree, whatever the directory's size, instead of the index and then the entry (version
/// 7 and 8 listed cookies only; such a tree is read whole and rewritten at conversion).
///
/// Every value read is checked: a record whose name does not hash where it is listed, or a
/// short record (no name: it did not fit) naming a cookie with no entry or another entry, is
/// damage (EIO). What a full record says is trusted by a lookup; fsck checks every record
/// against the entry at its cookie.
extension MetadataTree {
    package static func nameIndexKey(_ directory: InodeNumber, hash: UInt64) -> TreeKey {
        TreeKey(object: directory, kind: Kind.nameIndex, offset: hash)
    }

    /// One entry as the name index lists it: `name` is empty in a short record.
    package struct IndexRecord: Equatable {
        package var cookie: UInt64
        package var child: InodeNumber
        package var type: FileType
        package var name: [UInt8]

        package init(cookie: UInt64, child: InodeNumber, type: FileType, name: [UInt8]) {
            self.cookie = cookie
            self.child = child
            self.type = type
            self.name = name
        }

        package static let fixedBytes = 18
        package var entry: Directory.Entry { Directory.Entry(ino: child, type: type, cookie: cookie) }
    }

    /// The first format version whose name index holds records (IndexRecord), not cookies.
    package static let firstVersionWithIndexRecords: UInt32 = 9

    /// The entry named `name` in directory `directory`, as this tree holds it.
    package func lookupEntry(in directory: InodeNumber, named name: [UInt8]) throws -> Directory.Entry? {
        let hash = nameHash(name)
        guard let value = try tree.lookup(Self.nameIndexKey(directory, hash: hash)) else { return nil }
        for record in try decodeIndex(value, directory: directory, hash: hash) {
            if !record.name.isEmpty {
                if record.name == name { return record.entry }
                continue
            }
            guard let stored = try storedEntry(of: directory, cookie: record.cookie) else {
                throw DecodingError(description: "directory \(directory)'s name index lists cookie \(record.cookie), which holds no entry")
            }
            guard nameHash(stored.name) == hash, stored.entry == record.entry else {
                throw DecodingError(description: "directory \(directory)'s name index lists cookie \(record.cookie) as an entry it does not hold")
            }
            if stored.name == name { return stored.entry }
        }
        return nil
    }

    /// The entry at `cookie`, as this tree holds it.
    package func storedEntry(of directory: InodeNumber, cookie: UInt64) throws -> (name: [UInt8], entry: Directory.Entry)? {
        let items = try tree.items(from: Self.entryKey(directory, cookie: cookie),
                                   through: Self.entryKey(directory, cookie: cookie, part: Self.entryParts - 1))
        guard !items.isEmpty else { return nil }
        return try decodeEntry(of: directory, cookie: cookie, parts: items)
    }

    /// The stored entries of `directory` with a cookie after `cookie` and below `end`, in cookie
    /// order, until `body` returns false.
    package func forEachStoredEntry(of directory: InodeNumber, after cookie: UInt64, before end: UInt64,
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
    package func decodeEntry(of directory: InodeNumber, cookie: UInt64, parts: [TreeItem]) throws -> (name: [UInt8], entry: Directory.Entry) {
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
        guard Directory.isValidEntryName(name), child >= Superblock.rootInode, child < CheckpointCodec.maxInodeNumber,
              let type = FileType(mode: UInt32(rawType) << 12),
              Directory.isEntryCookie(cookie) else {
            throw DecodingError(description: "directory \(directory) has a malformed entry at cookie \(cookie)")
        }
        return (name, Directory.Entry(ino: child, type: type, cookie: cookie))
    }

    /// An index value: records in ascending cookie order, at least one, each checked.
    package func decodeIndex(_ value: [UInt8], directory: InodeNumber, hash: UInt64) throws -> [IndexRecord] {
        func malformed(_ what: String) -> DecodingError {
            DecodingError(description: "directory \(directory)'s name index at hash \(hash) \(what)")
        }
        var reader = ByteReader(value)
        var records: [IndexRecord] = []
        guard reader.remaining > 0 else { throw malformed("is empty") }
        while reader.remaining > 0 {
            let cookie = try reader.u64(), child = try reader.u64(), rawType = try reader.u8()
            let name = try reader.raw(Int(try reader.u8()))
            guard Directory.isEntryCookie(cookie), records.last.map({ $0.cookie < cookie }) ?? true else {
                throw malformed("lists an invalid cookie \(cookie)")
            }
            guard child >= Superblock.rootInode, child < CheckpointCodec.maxInodeNumber, let type = FileType(mode: UInt32(rawType) << 12) else {
                throw malformed("is malformed")
            }
            guard name.isEmpty || (Directory.isValidEntryName(name) && nameHash(name) == hash) else {
                throw malformed("lists a name that does not hash there")
            }
            records.append(IndexRecord(cookie: cookie, child: child, type: type, name: name))
        }
        return records
    }

    /// A version 7 or 8 index value: ascending cookies, at least one (read at conversion only).
    package func decodeCookieIndex(_ value: [UInt8], directory: InodeNumber, hash: UInt64) throws -> [UInt64] {
        guard !value.isEmpty, value.count % 8 == 0 else {
            throw DecodingError(description: "directory \(directory)'s name index at hash \(hash) is malformed")
        }
        var reader = ByteReader(value)
        var cookies: [UInt64] = []
        while reader.remaining > 0 {
            let cookie = try reader.u64()
            guard Directory.isEntryCookie(cookie), cookies.last.map({ $0 < cookie }) ?? true else {
                throw DecodingError(description: "directory \(directory)'s name index at hash \(hash) lists an invalid cookie \(cookie)")
            }
            cookies.append(cookie)
        }
        return cookies
    }

    /// The value of `records` (any order): every record with its name when they all fit in one
    /// value, every record short (no name) otherwise; nil when even that does not fit.
    package func encodeIndex(_ records: [IndexRecord]) -> [UInt8]? {
        Self.encodeIndex(records, maxValueSize: tree.maxValueSize)
    }

    package static func encodeIndex(_ records: [IndexRecord], maxValueSize: Int) -> [UInt8]? {
        let sorted = records.sorted { $0.cookie < $1.cookie }
        let fullBytes = sorted.reduce(0) { $0 + IndexRecord.fixedBytes + $1.name.count }
        let withNames = fullBytes <= maxValueSize
        guard withNames || sorted.count * IndexRecord.fixedBytes <= maxValueSize else { return nil }
        var writer = ByteWriter(capacity: withNames ? fullBytes : sorted.count * IndexRecord.fixedBytes)
        for record in sorted {
            writer.u64(record.cookie)
            writer.u64(record.child)
            writer.u8(UInt8(record.type.rawValue >> 12))
            writer.u8(withNames ? UInt8(record.name.count) : 0)
            if withNames { writer.raw(record.name) }
        }
        return writer.bytes
    }

    // MARK: writing

    /// The entries at `changed` cookies become what `directory` holds there, and the name
    /// index follows (nil: every entry and the whole index are rewritten, and stored entries
    /// the directory does not hold go; only a complete directory can be written so).
    package func writeEntries(of ino: InodeNumber, _ directory: Directory, changed: Set<UInt64>?) throws {
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
            // The index lists the child and its type too: a rename over a name retargets it.
            if stored?.name != now?.name || stored?.entry != now?.entry {
                if let stored { try removeFromIndex(ino, name: stored.name, cookie: cookie) }
                if let now { try addToIndex(ino, name: now.name, entry: now.entry) }
            }
            try writeEntryParts(of: ino, cookie: cookie, now)
        }
    }

    private func writeAllEntries(of ino: InodeNumber, _ directory: Directory) throws {
        for kind in [Kind.directoryEntry, Kind.nameIndex] {
            let stored = try tree.items(from: TreeKey(object: ino, kind: kind, offset: 0), through: TreeKey(object: ino, kind: kind, offset: .max))
            for item in stored { _ = try tree.remove(item.key) }
        }
        var index: [UInt64: [IndexRecord]] = [:]
        var failure: (any Error)?
        directory.forEach(after: 0) { name, entry in
            do {
                try writeEntryParts(of: ino, cookie: entry.cookie, (name, entry))
                index[nameHash(name), default: []].append(IndexRecord(cookie: entry.cookie, child: entry.ino, type: entry.type, name: name))
                return true
            } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        for (hash, records) in index { try storeIndex(ino, hash: hash, records) }
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

    private func addToIndex(_ ino: InodeNumber, name: [UInt8], entry: Directory.Entry) throws {
        let hash = nameHash(name)
        var records = try tree.lookup(Self.nameIndexKey(ino, hash: hash)).map { try decodeIndex($0, directory: ino, hash: hash) } ?? []
        records.removeAll { $0.cookie == entry.cookie }
        records.append(IndexRecord(cookie: entry.cookie, child: entry.ino, type: entry.type, name: name))
        try storeIndex(ino, hash: hash, records)
    }

    private func removeFromIndex(_ ino: InodeNumber, name: [UInt8], cookie: UInt64) throws {
        let hash = nameHash(name)
        guard let value = try tree.lookup(Self.nameIndexKey(ino, hash: hash)) else { return }
        try storeIndex(ino, hash: hash, try decodeIndex(value, directory: ino, hash: hash).filter { $0.cookie != cookie })
    }

    /// The index item at `hash` becomes `records` (none: no item). Short records read back
    /// get their names from their entries first (the entries at their cookies are still what
    /// the index lists), so that the value is written by the one rule `encodeIndex` states.
    private func storeIndex(_ ino: InodeNumber, hash: UInt64, _ records: [IndexRecord]) throws {
        let key = Self.nameIndexKey(ino, hash: hash)
        guard !records.isEmpty else {
            _ = try tree.remove(key)
            return
        }
        var records = records
        for slot in records.indices where records[slot].name.isEmpty {
            guard let stored = try storedEntry(of: ino, cookie: records[slot].cookie), stored.entry == records[slot].entry else {
                throw DecodingError(description: "directory \(ino)'s name index lists cookie \(records[slot].cookie) as an entry it does not hold")
            }
            records[slot].name = stored.name
        }
        guard let value = encodeIndex(records) else {
            throw TreeError.valueTooLarge(size: records.count * IndexRecord.fixedBytes, limit: tree.maxValueSize)
        }
        try tree.insert(key, value)
    }
}
