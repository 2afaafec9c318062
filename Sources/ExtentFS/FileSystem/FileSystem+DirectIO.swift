import SystemPackage

/// O_DIRECT, coherent with the cache (issue 4): a direct read first writes back the file's dirty
/// pages, then reads the disk without filling the cache; a direct write goes through the cache's
/// reservation and copy-on-write machinery, is written back before it returns, and its pages are
/// dropped, so neither path sees data the other has not.
extension FileSystem {
    /// [offset, end) of the file, end within its size. Caller (`read`) has written the file back
    /// and holds the invalidate_lock shared.
    func readDirect(_ inode: Inode, offset: UInt64, end: UInt64, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let shift = UInt64(geometry.blockShift)
        let length = Int(end - offset)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: Page.size)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        // Copy-on-write writeback of this file may remap these blocks meanwhile (it needs no
        // lock a direct read holds); the barrier keeps the old ones from being reused until read.
        try journal.reuseBarrier.withShared {
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
