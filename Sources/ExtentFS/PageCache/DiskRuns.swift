#if canImport(Glibc)
import Glibc
#endif

/// Pieces of page memory gathered into runs that are contiguous on disk, so a fill or a writeback
/// costs one preadv/pwritev per run instead of one call per block.
struct DiskRuns {
    struct Run {
        var diskOffset: UInt64
        var vectors: [iovec]
        var length: Int
    }

    private(set) var runs: [Run] = []
    private(set) var totalBytes = 0

    var isEmpty: Bool { runs.isEmpty }

    mutating func append(diskOffset: UInt64, memory: UnsafeMutableRawPointer, length: Int) {
        totalBytes += length
        if var last = runs.last, last.diskOffset + UInt64(last.length) == diskOffset {
            let lastVector = last.vectors[last.vectors.count - 1]
            if lastVector.iov_base + lastVector.iov_len == memory {
                last.vectors[last.vectors.count - 1].iov_len += length
            } else {
                last.vectors.append(iovec(iov_base: memory, iov_len: length))
            }
            last.length += length
            runs[runs.count - 1] = last
        } else {
            runs.append(Run(diskOffset: diskOffset, vectors: [iovec(iov_base: memory, iov_len: length)], length: length))
        }
    }

    func read(from store: BackingStore) throws {
        for run in runs { try store.read(vectors: run.vectors, at: run.diskOffset) }
    }

    func write(to store: BackingStore) throws {
        for run in runs { try store.write(vectors: run.vectors, at: run.diskOffset) }
    }

    mutating func removeAll() {
        runs.removeAll(keepingCapacity: true)
        totalBytes = 0
    }
}

/// Zeros standing in for absent pages when a whole new block is written.
enum ZeroPage {
    static let memory: UnsafeMutableRawPointer = {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Page.size, alignment: Page.size)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Page.size)
        return memory
    }()
}
