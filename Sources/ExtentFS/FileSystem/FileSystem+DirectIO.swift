import SystemPackage

/// O_DIRECT, coherent with the cache (issue 4): a direct read first writes back the file's dirty
/// pages, then reads the disk without filling the cache (`readBypassingCache`); a direct write
/// goes through the cache's reservation and copy-on-write machinery, is written back before it
/// returns, and its pages are dropped, so neither path sees data the other has not.
extension FileSystem {
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
