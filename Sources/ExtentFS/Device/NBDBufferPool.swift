/// Memory for readahead chunks and staging buffers, reused: memory fresh from the allocator
/// costs a page fault and a zeroed page for every 4 KiB the first time it is touched, which on a
/// stream of reads is more than the copy that fills it.
final class NBDBufferPool: @unchecked Sendable {
    let bufferBytes: Int
    private let maximumKept: Int
    private let lock = Mutex()
    private var kept: [UnsafeMutableRawPointer] = []

    init(bufferBytes: Int, maximumKept: Int) {
        self.bufferBytes = bufferBytes
        self.maximumKept = maximumKept
    }

    deinit {
        for memory in kept { memory.deallocate() }
    }

    /// A buffer of `bufferBytes`, page-aligned; give it back when done.
    func take() -> UnsafeMutableRawPointer {
        lock.withLock { kept.popLast() } ?? UnsafeMutableRawPointer.allocate(byteCount: bufferBytes, alignment: 4096)
    }

    func give(_ memory: UnsafeMutableRawPointer) {
        let keep = lock.withLock { () -> Bool in
            guard kept.count < maximumKept else { return false }
            kept.append(memory)
            return true
        }
        if !keep { memory.deallocate() }
    }
}
