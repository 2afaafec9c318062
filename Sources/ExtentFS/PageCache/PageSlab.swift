#if canImport(Glibc)
import Glibc
#endif

/// Page memory in pieces of up to 2 MiB: one mmap, populated at once, instead of a heap
/// allocation and a page fault per 4 KiB page (both showed in profiles of cold reads as much as
/// the copy from the disk itself). Aligned to pages; zero when mapped.
struct PageSlab {
    /// 2 MiB, or an eighth of a small cache's budget (64 KiB at least), so that a small cache
    /// does not map far more than it may hold.
    static func bytes(forBudgetPages budgetPages: Int) -> Int {
        min(2 << 20, max(16, budgetPages / 8) * Page.size)
    }

    let base: UnsafeMutableRawPointer
    let bytes: Int

    static func map(bytes: Int) -> PageSlab {
        guard let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
              memory != MAP_FAILED else {
            fatalError("out of memory mapping page memory")
        }
        return PageSlab(base: memory, bytes: bytes)
    }

    var pages: [UnsafeMutableRawPointer] {
        stride(from: 0, to: bytes, by: Page.size).map { base + $0 }
    }

    func unmap() {
        munmap(base, bytes)
    }
}
