import ExtentFSCore
import SystemPackage

/// Reads that bypass the page cache: O_DIRECT reads, and random reads of which no page is cached.
///
/// A random read through a mount reaches the engine only when the kernel's page cache
/// (keep_cache) lacks the range, and the kernel keeps what we reply; a copy in our cache would be
/// a second one that nobody asks for again, and making it cost a random 4 KiB read more than
/// the rest of the daemon's work for it (fresh page memory, the page and its index entry, its
/// eviction later). So a read that is not sequential and finds none of its pages cached reads
/// the disk into the reply. A page that is cached (dirty above all) sends the read through the
/// cache, so nothing written and not yet written back is missed. Which reads go around is
/// decided with the readahead window, in one round of the index lock (`readaheadWindow`).
extension FileSystem {
    /// [offset, end) of the file, end within its size, read from disk into one buffer: zeros for
    /// holes and unwritten blocks. Caller holds the invalidate_lock shared (rule 1: nothing
    /// punches or truncates the range meanwhile) and, for O_DIRECT, has written the file back.
    func readBypassingCache(_ inode: Inode, offset: UInt64, end: UInt64, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let shift = UInt64(geometry.blockShift)
        let length = Int(end - offset)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: Page.size)
        defer { buffer.deallocate() }
        // Copy-on-write writeback of this file may remap these blocks meanwhile (it needs no
        // lock this read holds); the barrier keeps the old ones from being reused until read.
        try journal.reuseBarrier.withShared {
            let extents = inode.fieldLock.withLock { inode.extents.extents(from: offset >> shift, to: (end - 1) >> shift + 1) }
            var runs = DiskRuns()
            var zeroFrom = offset
            for extent in extents where extent.state == .written {
                let start = max(offset, extent.logical << shift)
                let stop = min(end, extent.logicalEnd << shift)
                guard start < stop else { continue }
                zero(buffer, from: zeroFrom - offset, to: start - offset)
                zeroFrom = stop
                let disk = (extent.physical << shift) + (start - (extent.logical << shift))
                runs.append(diskOffset: disk, memory: buffer.baseAddress! + Int(start - offset), length: Int(stop - start))
            }
            zero(buffer, from: zeroFrom - offset, to: end - offset)
            pausePoint(.readAfterMapping)
            do {
                try runs.read(from: store)
            } catch {
                logger.error("read of inode \(inode.ino) failed: \(error)")
                throw Errno.ioError
            }
        }
        body(UnsafeRawBufferPointer(buffer))
    }

    private func zero(_ buffer: UnsafeMutableRawBufferPointer, from start: UInt64, to stop: UInt64) {
        guard start < stop else { return }
        (buffer.baseAddress! + Int(start)).initializeMemory(as: UInt8.self, repeating: 0, count: Int(stop - start))
    }
}
