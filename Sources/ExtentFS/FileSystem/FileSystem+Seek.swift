import SystemPackage

/// SEEK_DATA and SEEK_HOLE. Written and delayed extents are data (delayed ones hold dirty
/// pages); unwritten extents and unmapped ranges are holes; EOF is always a hole.
extension FileSystem {
    public func seek(_ ino: InodeNumber, offset: UInt64, to target: SeekTarget) throws -> UInt64 {
        let inode = try self.inode(ino)
        guard inode.type == .regular else { throw Errno.invalidArgument }
        inode.invalidateLock.lockShared()
        defer { inode.invalidateLock.unlock() }
        return try metadata.withLock {
            let size = inode.size
            guard offset < size else { throw Errno.noSuchAddressOrDevice }
            let shift = UInt64(geometry.blockShift)
            let endBlock = (size - 1) >> shift + 1
            var block = offset >> shift
            for extent in inode.extents.extents(from: block, to: endBlock) {
                let isData = extent.state != .unwritten
                switch target {
                case .data:
                    if isData { return max(offset, extent.logical << shift) }
                case .hole:
                    if extent.logical > block { return min(size, max(offset, block << shift)) }
                    if !isData { return min(size, max(offset, extent.logical << shift)) }
                }
                block = extent.logicalEnd
            }
            switch target {
            case .data: throw Errno.noSuchAddressOrDevice
            case .hole: return min(size, max(offset, block << shift))
            }
        }
    }
}
