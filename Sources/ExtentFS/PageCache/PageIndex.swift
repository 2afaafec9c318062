/// A file's page index: page number -> page, as a hash of 64-page chunks with a slot array each
/// (the shape of the kernel's XArray, in small). Lookups of neighbouring pages hit the same chunk,
/// deletes do not rehash, and the hash holds 1/64 of the entries a flat dictionary would. Which
/// pages are dirty is a bitmap per chunk (the XArray's dirty mark), so marking costs no hashing.
/// Guarded by the owning AddressSpace's indexLock.
struct PageIndex {
    static let chunkShift: UInt64 = 6
    static let chunkSize = 1 << Int(chunkShift)

    final class Chunk {
        var slots = ContiguousArray<Page?>(repeating: nil, count: PageIndex.chunkSize)
        var occupied = 0
        /// Bit i: the page in slot i is dirty.
        var dirty: UInt64 = 0
    }

    private var chunks = ChunkTable<Chunk>()
    private(set) var count = 0
    private(set) var dirtyCount = 0

    var isEmpty: Bool { count == 0 }

    private static func slot(_ index: UInt64) -> Int { Int(index & UInt64(PageIndex.chunkSize - 1)) }

    subscript(index: UInt64) -> Page? {
        get { chunks[index >> PageIndex.chunkShift]?.slots[PageIndex.slot(index)] }
    }

    mutating func insert(_ page: Page) {
        let key = page.index >> PageIndex.chunkShift
        let slot = PageIndex.slot(page.index)
        let chunk: Chunk
        if let existing = chunks[key] {
            chunk = existing
        } else {
            chunk = Chunk()
            chunks.set(chunk, for: key)
        }
        if chunk.slots[slot] == nil {
            chunk.occupied += 1
            count += 1
        }
        chunk.slots[slot] = page
    }

    @discardableResult
    mutating func remove(_ index: UInt64) -> Page? {
        let key = index >> PageIndex.chunkShift
        guard let chunk = chunks[key] else { return nil }
        let slot = PageIndex.slot(index)
        guard let page = chunk.slots[slot] else { return nil }
        setDirty(chunk, slot: slot, false)
        chunk.slots[slot] = nil
        chunk.occupied -= 1
        count -= 1
        if chunk.occupied == 0 { chunks.remove(key) }
        return page
    }

    /// Marks the page at `index` dirty or clean; nothing when no page is there.
    mutating func setDirty(_ index: UInt64, _ dirty: Bool) {
        guard let chunk = chunks[index >> PageIndex.chunkShift] else { return }
        let slot = PageIndex.slot(index)
        guard chunk.slots[slot] != nil else { return }
        setDirty(chunk, slot: slot, dirty)
    }

    private mutating func setDirty(_ chunk: Chunk, slot: Int, _ dirty: Bool) {
        let bit: UInt64 = 1 << UInt64(slot)
        let was = chunk.dirty & bit != 0
        guard was != dirty else { return }
        if dirty {
            chunk.dirty |= bit
            dirtyCount += 1
        } else {
            chunk.dirty &= ~bit
            dirtyCount -= 1
        }
    }

    /// The indices of dirty pages, ascending.
    func dirtyIndices() -> [UInt64] {
        var marked: [(key: UInt64, bits: UInt64)] = []
        chunks.forEach { key, chunk in
            if chunk.dirty != 0 { marked.append((key, chunk.dirty)) }
        }
        marked.sort { $0.key < $1.key }
        var result: [UInt64] = []
        result.reserveCapacity(dirtyCount)
        for (key, bits) in marked {
            var remaining = bits
            while remaining != 0 {
                let slot = UInt64(remaining.trailingZeroBitCount)
                result.append(key << PageIndex.chunkShift | slot)
                remaining &= remaining - 1
            }
        }
        return result
    }

    /// Pages with first <= index < end, in no particular order.
    func pages(from first: UInt64, to end: UInt64) -> [Page] {
        var result: [Page] = []
        guard first < end else { return result }
        let firstKey = first >> PageIndex.chunkShift, lastKey = (end - 1) >> PageIndex.chunkShift
        // A short range (a reader's drop-behind) looks its chunks up; a long one (truncate to 0)
        // walks the table instead of every possible key.
        if lastKey - firstKey < UInt64(chunks.count) {
            for key in firstKey...lastKey {
                guard let chunk = chunks[key] else { continue }
                for case let page? in chunk.slots where page.index >= first && page.index < end { result.append(page) }
            }
            return result
        }
        chunks.forEach { key, chunk in
            guard key >= firstKey, key <= lastKey else { return }
            for case let page? in chunk.slots where page.index >= first && page.index < end {
                result.append(page)
            }
        }
        return result
    }

    /// The chunks, for a reclaim scan that may remove pages while it walks (chunks are objects,
    /// so removal does not disturb the walk).
    var allChunks: [Chunk] { chunks.allValues }
}
