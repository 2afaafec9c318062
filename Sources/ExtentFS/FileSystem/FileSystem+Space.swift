import SystemPackage

/// Space operations (issue 3). Each one that moves or removes blocks holds the inode lock and the
/// invalidate_lock exclusively from before its pages go until the extent map has changed.
extension FileSystem {
    /// fallocate(2): preallocation (mode 0, keepSize), punchHole (with keepSize), zeroRange
    /// (with or without keepSize), collapseRange, insertRange, unshareRange.
    public func fallocate(_ ino: InodeNumber, offset: UInt64, length: UInt64, mode: FallocateMode) throws {
        throw Errno.notSupported
    }

    /// Shares [sourceOffset, +length) of `source` at `destinationOffset` of `destination`
    /// (FICLONERANGE; length 0 = through the source's EOF). Returns the bytes cloned.
    public func clone(from source: InodeNumber, sourceOffset: UInt64, to destination: InodeNumber,
                      destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        throw Errno.notSupported
    }

    /// Compares, then shares, as one atomic step (DESIGN.md rule 2).
    public func dedupe(from source: InodeNumber, sourceOffset: UInt64, length: UInt64,
                       to destination: InodeNumber, destinationOffset: UInt64) throws -> DedupeStatus {
        throw Errno.notSupported
    }

    /// copy_file_range(2): shares whole blocks where offsets allow, copies the rest.
    public func copyFileRange(from source: InodeNumber, sourceOffset: UInt64, to destination: InodeNumber,
                              destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        throw Errno.notSupported
    }

    /// The extent map of [offset, offset + length) in bytes.
    public func extentMap(_ ino: InodeNumber, offset: UInt64, length: UInt64) throws -> [MappedExtent] {
        throw Errno.notSupported
    }
}
