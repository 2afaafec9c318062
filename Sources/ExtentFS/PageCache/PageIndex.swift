/// A file's page index: page number -> page, as a hash of 64-page chunks with a slot array each
/// (the shape of the kernel's XArray, in small). Lookups of neighbouring pages hit the same chunk,
/// deletes do not rehash, and the hash holds 1/64 of the entries a flat dictionary would.
/// Guarded by the owning AddressSpace's indexLock.
struct PageIndex {
    static let chunkShift: UInt64 = 6
    static let chunkSize = 1 << Int(chunkShift)

    final class Chunk {
        var slots = ContiguousArray<Page?>(repeating: nil, count: PageIndex.chunkSize)
        var occupied = 0
    }

    private var chunks: [UInt64: Chunk] = [:]
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(index: UInt64) -> Page? {
        get { chunks[index >> PageIndex.chunkShift]?.slots[Int(index & UInt64(PageIndex.chunkSize - 1))] }
    }

    mutating func insert(_ page: Page) {
        let key = page.index >> PageIndex.chunkShift
        let slot = Int(page.index & UInt64(PageIndex.chunkSize - 1))
        let chunk: Chunk
        if let existing = chunks[key] {
            chunk = existing
        } else {
            chunk = Chunk()
            chunks[key] = chunk
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
        let slot = Int(index & UInt64(PageIndex.chunkSize - 1))
        guard let page = chunk.slots[slot] else { return nil }
        chunk.slots[slot] = nil
        chunk.occupied -= 1
        count -= 1
        if chunk.occupied == 0 { chunks.removeValue(forKey: key) }
        return page
    }

    /// Pages with first <= index < end, in no particular order.
    func pages(from first: UInt64, to end: UInt64) -> [Page] {
        var result: [Page] = []
        for (key, chunk) in chunks {
            let chunkStart = key << PageIndex.chunkShift
            guard chunkStart < end, chunkStart + UInt64(PageIndex.chunkSize) > first else { continue }
            for case let page? in chunk.slots where page.index >= first && page.index < end {
                result.append(page)
            }
        }
        return result
    }

    /// The chunks, for a reclaim scan that may remove pages while it walks (chunks are objects,
    /// so removal does not disturb the walk).
    var allChunks: [Chunk] { Array(chunks.values) }
}
