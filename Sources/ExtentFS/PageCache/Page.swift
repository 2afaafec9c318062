#if canImport(Glibc)
import Glibc
#endif

/// A 4 KiB page of one file, in aligned raw memory.
///
/// State is kept per unit (a unit is min(block size, page size); up to 8 per page at 512-byte
/// blocks), as DESIGN.md rule 3 asks: `uptodate` says which units hold the file's data, `dirty`
/// which must be written back. Writeback writes exactly the dirty units. A page's state exists
/// from the page's creation, so there is no "state created later for an uptodate page" moment;
/// `markAllUptodate` exists for fills that cover the whole page at once.
///
/// Invariants: dirty implies uptodate; memory of a unit that is not uptodate is zero.
/// `lock` (the page lock) guards memory, `uptodate` and `dirty`; `references` and `recentlyUsed`
/// are guarded by the owning AddressSpace's indexLock.
final class Page: @unchecked Sendable {
    static let size = 4096

    let index: UInt64
    let memory: UnsafeMutableRawPointer
    let lock = Mutex()

    // Guarded by `lock`.
    private(set) var uptodate: UInt8 = 0
    private(set) var dirty: UInt8 = 0

    // Guarded by AddressSpace.indexLock.
    var references = 0
    var recentlyUsed = true

    init(index: UInt64, memory: UnsafeMutableRawPointer) {
        self.index = index
        self.memory = memory
    }

    var fileOffset: UInt64 { index * UInt64(Page.size) }

    static func unitMask(_ first: Int, _ count: Int) -> UInt8 {
        count >= 8 ? 0xFF : UInt8(truncatingIfNeeded: ((1 << count) - 1) << first)
    }

    func isUptodate(units mask: UInt8) -> Bool { uptodate & mask == mask }
    func setUptodate(units mask: UInt8) { uptodate |= mask }
    func markAllUptodate(unitsPerPage: Int) { uptodate = Page.unitMask(0, unitsPerPage) }
    var isDirty: Bool { dirty != 0 }

    /// Returns whether the page went from clean to dirty. Caller holds `lock`.
    func setDirty(units mask: UInt8) -> Bool {
        precondition(uptodate & mask == mask, "dirtying units that are not uptodate")
        let wasClean = dirty == 0
        dirty |= mask
        return wasClean
    }

    /// Returns whether the page went from dirty to clean. Caller holds `lock`.
    func clearDirty(units mask: UInt8) -> Bool {
        let wasDirty = dirty != 0
        dirty &= ~mask
        return wasDirty && dirty == 0
    }

    /// Drops data and state of units (truncate). Caller holds `lock`.
    func discard(units mask: UInt8, unitSize: Int) {
        for unit in 0..<8 where mask & (1 << unit) != 0 && unit * unitSize < Page.size {
            (memory + unit * unitSize).initializeMemory(as: UInt8.self, repeating: 0, count: unitSize)
        }
        uptodate &= ~mask
        dirty &= ~mask
    }
}
