import SystemPackage

/// O_DIRECT, coherent with the cache (issue 4): a direct read first writes back the file's dirty
/// pages, then reads the disk without filling the cache; a direct write goes through the cache's
/// reservation and copy-on-write machinery, is written back before it returns, and its pages are
/// dropped, so neither path sees data the other has not.
extension FileSystem {
    func readDirect(_ inode: Inode, offset: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        try writeback(inode)
        inode.invalidateLock.lockShared()
        defer { inode.invalidateLock.unlock() }
        let size = metadata.withLock { inode.size }
        guard count > 0, offset < size else {
            body(UnsafeRawBufferPointer(start: nil, count: 0))
            return
        }
        let end = min(offset + UInt64(count), size)
        let shift = UInt64(geometry.blockShift)
        let length = Int(end - offset)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: Page.size)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        // Copy-on-write writeback of this file may remap these blocks meanwhile (it needs no
        // lock a direct read holds); the barrier keeps the old ones from being reused until read.
        try readingMappedBlocks {
            let extents = metadata.withLock { inode.extents.extents(from: offset >> shift, to: (end - 1) >> shift + 1) }
            var runs = DiskRuns()
            for extent in extents where extent.state == .written {
                let start = max(offset, extent.logical << shift)
                let stop = min(end, extent.logicalEnd << shift)
                guard start < stop else { continue }
                let disk = (extent.physical << shift) + (start - (extent.logical << shift))
                runs.append(diskOffset: disk, memory: buffer.baseAddress! + Int(start - offset), length: Int(stop - start))
            }
            pausePoint(.readAfterMapping)
            do {
                try runs.read(from: store)
            } catch {
                logger.error("direct read of inode \(inode.ino) failed: \(error)")
                throw Errno.ioError
            }
        }
        body(UnsafeRawBufferPointer(buffer))
    }

    /// Runs `body`, which maps file blocks under Metadata.lock and then reads them from disk, so
    /// that none of them becomes reusable before it is read (Journal.reuseBarrier). Not nested.
    func readingMappedBlocks<T>(_ body: () throws -> T) rethrows -> T {
        try journal.reuseBarrier.withShared(body)
    }

    /// Caller holds the inode's lock exclusively (the write path).
    func finishDirectWrite(_ inode: Inode, _ space: AddressSpace, offset: UInt64, length: UInt64) throws {
        guard length > 0 else { return }
        try writeback(inode)
        inode.invalidateLock.withExclusive {
            let pageSize = UInt64(Page.size)
            space.removePages(from: offset / pageSize, to: (offset + length + pageSize - 1) / pageSize)
        }
    }
}
