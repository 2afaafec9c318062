/// A directory's entries: a hash index by name (O(1) lookup at any size) and the entries in
/// creation order by cookie for readdir (binary search to resume; cookies are stable across
/// unmount, so a readdir offset stays valid). Guarded by Metadata.lock.
public struct Directory: Sendable {
    public struct Entry: Equatable, Sendable {
        public var ino: InodeNumber
        public var type: FileType
        public var cookie: UInt64
    }

    /// Cookies 1 and 2 are "." and ".."; entries start at 3.
    static let firstEntryCookie: UInt64 = 3
    /// Cookies are never reused; a directory would need 2^62 creates to reach this, and readdir
    /// offsets (off_t) stay positive.
    static let maxCookie: UInt64 = 1 << 62

    public private(set) var byName: [[UInt8]: Entry] = [:]
    /// Cookies in ascending order, some possibly of removed entries (skipped, compacted lazily).
    private var cookies: [UInt64] = []
    private var nameByCookie: [UInt64: [UInt8]] = [:]
    public private(set) var nextCookie: UInt64 = firstEntryCookie
    /// What the entries take in a checkpoint (u64 ino, u64 cookie, u8 type, u16 name length,
    /// name): charged to space as they are added (MetadataSpace).
    private(set) var encodedEntryBytes = 0
    static let encodedEntryOverhead = 19

    public init() {}

    /// No entries, and cookies from `nextCookie` on: a directory's image in a log record that
    /// carries its entry changes rather than its entries.
    init(emptyWithNextCookie nextCookie: UInt64) {
        self.nextCookie = nextCookie
    }

    /// A logged image's next cookie, which may be ahead of the entries' (a removed last entry).
    mutating func raiseNextCookie(to cookie: UInt64) {
        nextCookie = max(nextCookie, cookie)
    }

    /// One change to the entries, as a log record carries it: absolute (the name's entry after
    /// it, or its absence), so replaying a change twice leaves what replaying it once does.
    enum Change: Equatable {
        case set(name: [UInt8], entry: Entry)
        case remove(name: [UInt8])
    }

    /// Replays a logged change. Throws on a change no sequence of operations could have made
    /// (a cookie another name holds, or one not below the next cookie).
    mutating func apply(_ change: Change) throws {
        switch change {
        case .set(let name, let entry):
            guard entry.cookie >= Directory.firstEntryCookie, entry.cookie < Directory.maxCookie else {
                throw DecodingError(description: "directory entry change has an invalid cookie \(entry.cookie)")
            }
            if let holder = nameByCookie[entry.cookie], holder != name {
                throw DecodingError(description: "directory entry change gives cookie \(entry.cookie) to a second name")
            }
            if let existing = byName[name], existing.cookie == entry.cookie {
                byName[name] = entry
            } else {
                remove(name: name)
                restore(name: name, entry: entry)
            }
        case .remove(let name):
            remove(name: name)
        }
    }

    public var count: Int { byName.count }
    /// Every cookie below the limit has been given out (they are never reused, and an image may
    /// start near the limit): another entry would make a directory no mount accepts. ENOSPC.
    var isOutOfCookies: Bool { nextCookie >= Directory.maxCookie - 1 }
    public var isEmpty: Bool { byName.isEmpty }

    public func entry(named name: [UInt8]) -> Entry? { byName[name] }

    public mutating func add(name: [UInt8], ino: InodeNumber, type: FileType) {
        let entry = Entry(ino: ino, type: type, cookie: nextCookie)
        nextCookie += 1
        insert(name: name, entry: entry)
    }

    /// The entry holding `cookie`, if one does.
    func entry(atCookie cookie: UInt64) -> (name: [UInt8], entry: Entry)? {
        guard let name = nameByCookie[cookie], let entry = byName[name], entry.cookie == cookie else { return nil }
        return (name, entry)
    }

    /// Re-adds an entry with its stored cookie (checkpoint load; cookies arrive in any order).
    mutating func restore(name: [UInt8], entry: Entry) {
        insert(name: name, entry: entry)
        nextCookie = max(nextCookie, entry.cookie + 1)
    }

    /// The stored next cookie (checkpoint load): entries removed before the checkpoint took
    /// cookies above the ones left, which must not be given out again.
    mutating func restore(nextCookie stored: UInt64) {
        nextCookie = max(nextCookie, stored)
    }

    private mutating func insert(name: [UInt8], entry: Entry) {
        if byName.updateValue(entry, forKey: name) == nil { encodedEntryBytes += Directory.encodedEntryOverhead + name.count }
        nameByCookie[entry.cookie] = name
        if let last = cookies.last, last > entry.cookie {
            let index = firstCookieIndex(after: entry.cookie)
            cookies.insert(entry.cookie, at: index)
        } else {
            cookies.append(entry.cookie)
        }
    }

    @discardableResult
    public mutating func remove(name: [UInt8]) -> Entry? {
        guard let entry = byName.removeValue(forKey: name) else { return nil }
        encodedEntryBytes -= Directory.encodedEntryOverhead + name.count
        nameByCookie.removeValue(forKey: entry.cookie)
        if cookies.count > 64, cookies.count > 2 * byName.count {
            cookies = cookies.filter { nameByCookie[$0] != nil }
        }
        return entry
    }

    /// Points an existing name at another inode, keeping its cookie.
    mutating func retarget(name: [UInt8], ino: InodeNumber, type: FileType) {
        guard var entry = byName[name] else { return }
        entry.ino = ino
        entry.type = type
        byName[name] = entry
    }

    private func firstCookieIndex(after cookie: UInt64) -> Int {
        var low = 0
        var high = cookies.count
        while low < high {
            let mid = (low + high) / 2
            if cookies[mid] <= cookie { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Entries with a cookie greater than `cookie` and below `end`, in order, until `body`
    /// returns false.
    public func forEach(after cookie: UInt64, before end: UInt64 = .max, _ body: ([UInt8], Entry) -> Bool) {
        var index = firstCookieIndex(after: cookie)
        while index < cookies.count, cookies[index] < end {
            if let name = nameByCookie[cookies[index]], let entry = byName[name] {
                if !body(name, entry) { return }
            }
            index += 1
        }
    }
}
