import SystemPackage

/// A directory's entries in memory. Complete (`isComplete`): every entry, by name (O(1) lookup)
/// and in cookie order for readdir (binary search to resume; cookies are stable across unmount,
/// so a readdir offset stays valid). Partial (format version 7, a directory read back from the
/// metadata tree): only the entries changed since it was read, and the names and cookies removed
/// since; every other entry is in the tree that it was read from, looked up by name through the
/// tree's name index (Metadata+Entries.swift). A partial directory's memory follows its changes,
/// not its size, and it is never written whole.
///
/// Invariant of a partial directory: every change since it was read is here (an entry held wins
/// over the tree, a removed name or cookie hides the tree's), so the newest durable checkpoint's
/// tree, which holds what was read plus some of those changes, answers the rest at any time.
/// `count` and `encodedEntryBytes` are every entry's, held or not. Guarded by Metadata.lock.
public struct Directory: Sendable {
    public struct Entry: Equatable, Sendable {
        public var ino: InodeNumber
        public var type: FileType
        public var cookie: UInt64

        package init(ino: InodeNumber, type: FileType, cookie: UInt64) {
            self.ino = ino
            self.type = type
            self.cookie = cookie
        }
    }

    /// Cookies 1 and 2 are "." and ".."; entries start at 3.
    package static let firstEntryCookie: UInt64 = 3
    /// Cookies are never reused; a directory would need 2^62 creates to reach this, and readdir
    /// offsets (off_t) stay positive.
    package static let maxCookie: UInt64 = 1 << 62

    /// A cookie an entry may have: from `firstEntryCookie`, and below `maxCookie - 1`, so that
    /// the next cookie after it stays below `maxCookie`, as a directory's image requires (the
    /// engine stops one short of that: `isOutOfCookies`). Every decoder of an entry checks this.
    package static func isEntryCookie(_ cookie: UInt64) -> Bool { cookie >= firstEntryCookie && cookie < maxCookie - 1 }

    /// Every entry is held (else: those changed since the directory was read from the tree).
    package private(set) var isComplete = true
    private var byName: [[UInt8]: Entry] = [:]
    /// Cookies in ascending order, some possibly of removed entries (skipped, compacted lazily).
    private var cookies: [UInt64] = []
    private var nameByCookie: [UInt64: [UInt8]] = [:]
    /// A partial directory's names and cookies removed since it was read.
    private var removedNames = Set<[UInt8]>()
    private var removedCookies = Set<UInt64>()
    public private(set) var nextCookie: UInt64 = firstEntryCookie
    /// Every entry's count, held or not.
    public private(set) var count = 0
    /// What every entry takes in a checkpoint (u64 ino, u64 cookie, u8 type, u16 name length,
    /// name): charged to space as they are added (MetadataSpace).
    package private(set) var encodedEntryBytes = 0
    package static let encodedEntryOverhead = 19
    /// What the entries and removals held take in memory (the inode cache's charge).
    package private(set) var heldBytes = 0
    package static let heldEntryOverhead = 160

    public init() {}

    /// No entries, and cookies from `nextCookie` on: a directory's image in a log record that
    /// carries its entry changes rather than its entries.
    package init(emptyWithNextCookie nextCookie: UInt64) {
        self.nextCookie = nextCookie
    }

    /// A directory read from the tree without its entries: `count` of them, taking
    /// `encodedEntryBytes`, all in the tree.
    package init(partialWithNextCookie nextCookie: UInt64, count: Int, encodedEntryBytes: Int) {
        isComplete = false
        self.nextCookie = nextCookie
        self.count = count
        self.encodedEntryBytes = encodedEntryBytes
    }

    /// The image without its entries (a log record's or the tree's), keeping the totals.
    package var strippedOfEntries: Directory {
        Directory(partialWithNextCookie: nextCookie, count: count, encodedEntryBytes: encodedEntryBytes)
    }

    /// A logged image's next cookie, which may be ahead of the entries' (a removed last entry).
    package mutating func raiseNextCookie(to cookie: UInt64) {
        nextCookie = max(nextCookie, cookie)
    }

    /// The totals a logged or stored image gives a partial directory.
    package mutating func setTotals(count: Int, encodedEntryBytes: Int) {
        self.count = count
        self.encodedEntryBytes = encodedEntryBytes
    }

    /// One change to the entries, as a log record carries it: absolute (the name's entry after
    /// it, or its absence), so replaying a change twice leaves what replaying it once does. A
    /// removal carries the removed entry's cookie (format version 7), which a partial directory
    /// needs; older records have none.
    package enum Change: Equatable {
        case set(name: [UInt8], entry: Entry)
        case remove(name: [UInt8], cookie: UInt64?)
    }

    /// Replays a logged change. Throws on a change no sequence of operations could have made
    /// (a cookie another name holds, or one not below the next cookie). A partial directory's
    /// totals are the logged image's, set after (`setTotals`).
    package mutating func apply(_ change: Change) throws {
        switch change {
        case .set(let name, let entry):
            guard Directory.isEntryCookie(entry.cookie) else {
                throw DecodingError(description: "directory entry change has an invalid cookie \(entry.cookie)")
            }
            if let holder = nameByCookie[entry.cookie], holder != name {
                throw DecodingError(description: "directory entry change gives cookie \(entry.cookie) to a second name")
            }
            if let existing = byName[name], existing.cookie == entry.cookie {
                byName[name] = entry
            } else {
                if let existing = byName[name] { forget(name: name, entry: existing) }
                insert(name: name, entry: entry)
                if isComplete {
                    count += 1
                    encodedEntryBytes += Directory.encodedEntryOverhead + name.count
                }
                nextCookie = max(nextCookie, entry.cookie + 1)
            }
        case .remove(let name, let cookie):
            if isComplete {
                if let existing = byName[name] { forget(name: name, entry: existing) }
                return
            }
            guard let cookie else {
                throw DecodingError(description: "log record removes an entry of a directory read from the tree without its cookie")
            }
            if let existing = byName[name] { forgetHeld(name: name, entry: existing) }
            noteRemoved(name: name, cookie: cookie)
        }
    }

    /// Every cookie below the limit has been given out (they are never reused, and an image may
    /// start near the limit): another entry would make a directory no mount accepts. ENOSPC.
    package var isOutOfCookies: Bool { nextCookie >= Directory.maxCookie - 1 }
    public var isEmpty: Bool { count == 0 }
    /// The entries memory holds: `count` for a complete directory.
    package var heldCount: Int { byName.count }

    /// What memory knows of `name`.
    package enum HeldLookup {
        case found(Entry)
        case absent
        /// Only the tree can say (a partial directory).
        case unknown
    }

    package func heldLookup(_ name: [UInt8]) -> HeldLookup {
        if let entry = byName[name] { return .found(entry) }
        return isComplete || removedNames.contains(name) ? .absent : .unknown
    }

    /// Whether the tree's entry at `cookie` is hidden by memory (held anew or removed).
    package func hidesStoredEntry(atCookie cookie: UInt64) -> Bool {
        nameByCookie[cookie] != nil || removedCookies.contains(cookie)
    }

    /// A complete directory's entry named `name` (the only kind that can answer alone).
    package func entry(named name: [UInt8]) -> Entry? { byName[name] }

    public mutating func add(name: [UInt8], ino: InodeNumber, type: FileType) {
        let entry = Entry(ino: ino, type: type, cookie: nextCookie)
        nextCookie += 1
        insert(name: name, entry: entry)
        count += 1
        encodedEntryBytes += Directory.encodedEntryOverhead + name.count
    }

    /// The entry holding `cookie`, if memory holds one.
    package func entry(atCookie cookie: UInt64) -> (name: [UInt8], entry: Entry)? {
        guard let name = nameByCookie[cookie], let entry = byName[name], entry.cookie == cookie else { return nil }
        return (name, entry)
    }

    /// Re-adds an entry with its stored cookie (checkpoint load; cookies arrive in any order).
    package mutating func restore(name: [UInt8], entry: Entry) {
        insert(name: name, entry: entry)
        count += 1
        encodedEntryBytes += Directory.encodedEntryOverhead + name.count
        nextCookie = max(nextCookie, entry.cookie + 1)
    }

    /// A directory read whole from the tree: its entries are all restored, so it is complete.
    package mutating func markComplete() {
        isComplete = true
        removedNames = []
        removedCookies = []
    }

    /// The stored next cookie (checkpoint load): entries removed before the checkpoint took
    /// cookies above the ones left, which must not be given out again.
    package mutating func restore(nextCookie stored: UInt64) {
        nextCookie = max(nextCookie, stored)
    }

    private mutating func insert(name: [UInt8], entry: Entry) {
        if byName.updateValue(entry, forKey: name) == nil { heldBytes += Directory.heldEntryOverhead + name.count }
        nameByCookie[entry.cookie] = name
        if let last = cookies.last, last > entry.cookie {
            let index = firstCookieIndex(after: entry.cookie)
            if index == 0 || cookies[index - 1] != entry.cookie { cookies.insert(entry.cookie, at: index) }
        } else if cookies.last != entry.cookie {
            cookies.append(entry.cookie)
        }
    }

    /// Removes `entry`, which `name` holds (found by a lookup, in memory or the tree). A partial
    /// directory's totals come from its image: one that understates the tree's entries (damage
    /// fsck reports) stops at zero rather than going negative, which no image can encode.
    package mutating func remove(name: [UInt8], entry: Entry) {
        if let held = byName[name] { forgetHeld(name: name, entry: held) }
        if !isComplete { noteRemoved(name: name, cookie: entry.cookie) }
        count = max(0, count - 1)
        encodedEntryBytes = max(0, encodedEntryBytes - Directory.encodedEntryOverhead - name.count)
    }

    /// Forgets a held entry and its totals (a complete directory's replay).
    private mutating func forget(name: [UInt8], entry: Entry) {
        forgetHeld(name: name, entry: entry)
        count -= 1
        encodedEntryBytes -= Directory.encodedEntryOverhead + name.count
    }

    private mutating func forgetHeld(name: [UInt8], entry: Entry) {
        byName.removeValue(forKey: name)
        heldBytes -= Directory.heldEntryOverhead + name.count
        nameByCookie.removeValue(forKey: entry.cookie)
        if cookies.count > 64, cookies.count > 2 * byName.count {
            cookies = cookies.filter { nameByCookie[$0] != nil }
        }
    }

    private mutating func noteRemoved(name: [UInt8], cookie: UInt64) {
        if removedNames.insert(name).inserted { heldBytes += Directory.heldEntryOverhead / 2 + name.count }
        removedCookies.insert(cookie)
    }

    /// Points `name`'s entry (`entry`, found by a lookup) at another inode, keeping its cookie.
    package mutating func retarget(name: [UInt8], entry: Entry, ino: InodeNumber, type: FileType) {
        var changed = entry
        changed.ino = ino
        changed.type = type
        insert(name: name, entry: changed)
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

    /// Held entries with a cookie greater than `cookie` and below `end`, in order, until `body`
    /// returns false (every entry, for a complete directory).
    public func forEach(after cookie: UInt64, before end: UInt64 = .max, _ body: ([UInt8], Entry) -> Bool) {
        var index = firstCookieIndex(after: cookie)
        while index < cookies.count, cookies[index] < end {
            if let name = nameByCookie[cookies[index]], let entry = byName[name], entry.cookie == cookies[index] {
                if !body(name, entry) { return }
            }
            index += 1
        }
    }
}

/// Names (the operations that make one check it, and the decoders what an image holds).
extension Directory {
    package static func validate(name: [UInt8]) throws {
        guard !name.isEmpty else { throw Errno.noSuchFileOrDirectory }
        guard name.count <= Superblock.maxNameLength else { throw Errno.fileNameTooLong }
        guard !name.contains(0x2F), !name.contains(0) else { throw Errno.invalidArgument }
    }

    /// A name a directory entry may have: what `validate` lets through, less "." and "..".
    package static func isValidEntryName(_ name: [UInt8]) -> Bool {
        (try? validate(name: name)) != nil && !isDotOrDotDot(name)
    }

    package static func isDotOrDotDot(_ name: [UInt8]) -> Bool {
        name == [0x2E] || name == [0x2E, 0x2E]
    }
}
