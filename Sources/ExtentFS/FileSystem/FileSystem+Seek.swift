import ExtentFSCore
import SystemPackage

/// SEEK_DATA and SEEK_HOLE. Written and delayed extents are data (delayed ones hold dirty
/// pages); unwritten extents and unmapped ranges are holes; EOF is always a hole.
extension FileSystem {
    public func seek(_ ino: InodeNumber, offset: UInt64, to target: SeekTarget) throws -> UInt64 {
        try journal.shutdown.check()
        let inode = try self.inode(ino)
        guard inode.type == .regular else { throw Errno.invalidArgument }
        inode.invalidateLock.lockShared()
        defer { inode.invalidateLock.unlock() }
        let dirtyPages = inode.pages?.dirtyPageIndices() ?? []
        let pagesPerBlockShift = UInt64(geometry.blockShift) > 12 ? UInt64(geometry.blockShift) - 12 : 0
        /// Unwritten blocks holding dirty cached data are data (the data is there, only not yet on disk).
        func splitByDirty(_ extent: FileExtent) -> [FileExtent] {
            guard extent.state == .unwritten, !dirtyPages.isEmpty else { return [extent] }
            var pieces: [FileExtent] = []
            for block in extent.logical..<extent.logicalEnd {
                let firstPage = (block << UInt64(geometry.blockShift)) / UInt64(Page.size)
                let lastPage = firstPage + (UInt64(1) << pagesPerBlockShift) - 1
                let dirty = dirtyPages.contains { $0 >= firstPage && $0 <= lastPage }
                let piece = FileExtent(logical: block, length: 1, physical: 0, state: dirty ? .written : .unwritten)
                if let last = pieces.last, last.state == piece.state, last.logicalEnd == block {
                    pieces[pieces.count - 1].length += 1
                } else {
                    pieces.append(piece)
                }
            }
            return pieces
        }
        return try inode.fieldLock.withLock {
            let size = inode.size
            guard offset < size else { throw Errno.noSuchAddressOrDevice }
            let shift = UInt64(geometry.blockShift)
            let endBlock = (size - 1) >> shift + 1
            var block = offset >> shift
            for extent in inode.extents.extents(from: block, to: endBlock).flatMap(splitByDirty) {
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
