import SystemPackage

/// A mounted extentfs volume: the engine's whole public surface. Thread-safe: libfuse calls it
/// from many threads at once. Names are raw bytes, as Linux gives them. Every method throws
/// `Errno` for the errno the caller should see.
public final class FileSystem: @unchecked Sendable {
    public let blockSize: Int
    public static let rootInode: InodeNumber = 1

    init(blockSize: Int) { self.blockSize = blockSize }

    /// Opens and locks the image, checks the superblock, loads metadata, starts writeback.
    public static func mount(image: String, options: MountOptions = MountOptions()) throws -> FileSystem {
        throw Errno.notSupported
    }
    /// Writes back everything, commits, releases the image lock. Idempotent.
    public func unmount() throws {}

    // Lookup references: every call that returns FileAttributes for a name (lookup, create,
    // mknod, mkdir, symlink, link, readdir with plus) takes one reference, dropped by forget.
    public func lookup(parent: InodeNumber, name: [UInt8]) throws -> FileAttributes { throw Errno.notSupported }
    public func forget(_ ino: InodeNumber, count: UInt64) {}
    public func getattr(_ ino: InodeNumber) throws -> FileAttributes { throw Errno.notSupported }
    public func setattr(_ ino: InodeNumber, _ changes: AttributeChanges) throws -> FileAttributes { throw Errno.notSupported }

    public func mknod(parent: InodeNumber, name: [UInt8], mode: UInt32, rdev: UInt64, owner: Credentials) throws -> FileAttributes { throw Errno.notSupported }
    public func mkdir(parent: InodeNumber, name: [UInt8], mode: UInt32, owner: Credentials) throws -> FileAttributes { throw Errno.notSupported }
    public func symlink(parent: InodeNumber, name: [UInt8], target: [UInt8], owner: Credentials) throws -> FileAttributes { throw Errno.notSupported }
    public func link(_ ino: InodeNumber, newParent: InodeNumber, newName: [UInt8]) throws -> FileAttributes { throw Errno.notSupported }
    public func unlink(parent: InodeNumber, name: [UInt8]) throws { throw Errno.notSupported }
    public func rmdir(parent: InodeNumber, name: [UInt8]) throws { throw Errno.notSupported }
    public func rename(parent: InodeNumber, name: [UInt8], newParent: InodeNumber, newName: [UInt8], flags: RenameFlags) throws { throw Errno.notSupported }
    public func readlink(_ ino: InodeNumber) throws -> [UInt8] { throw Errno.notSupported }

    /// open and create pin the inode until release (an unlinked open file lives until then).
    public func open(_ ino: InodeNumber, flags: Int32) throws { throw Errno.notSupported }
    /// Creates a regular file and opens it; EEXIST if the name exists.
    public func create(parent: InodeNumber, name: [UInt8], mode: UInt32, flags: Int32, owner: Credentials) throws -> FileAttributes { throw Errno.notSupported }
    public func release(_ ino: InodeNumber) {}

    /// Reads up to count bytes (fewer at EOF). `body` runs while the invalidate_lock is still
    /// held shared, so the adapter replies from inside it (DESIGN.md rule 1).
    public func read(_ ino: InodeNumber, offset: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws { throw Errno.notSupported }
    /// Returns the bytes written; ENOSPC only when nothing could be written.
    public func write(_ ino: InodeNumber, offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int { throw Errno.notSupported }
    public func flush(_ ino: InodeNumber) throws {}
    public func fsync(_ ino: InodeNumber, dataOnly: Bool) throws {}

    public func opendir(_ ino: InodeNumber) throws { throw Errno.notSupported }
    /// Emits entries after `cookie` (0 = from the start, "." and ".." first) until `emit` returns
    /// false. With `plus`, attributes come along and each accepted entry other than "." and ".."
    /// takes a lookup reference.
    public func readdir(_ ino: InodeNumber, after cookie: UInt64, plus: Bool, _ emit: (DirectoryEntry, FileAttributes?) -> Bool) throws { throw Errno.notSupported }
    public func fsyncdir(_ ino: InodeNumber) throws {}

    public func statistics() -> FileSystemStatistics {
        FileSystemStatistics(blockSize: UInt64(blockSize), totalBlocks: 0, freeBlocks: 0, availableBlocks: 0, totalInodes: 0, freeInodes: 0, maxNameLength: 255)
    }

    public func setxattr(_ ino: InodeNumber, name: [UInt8], value: [UInt8], flags: XattrFlags) throws { throw Errno.notSupported }
    public func getxattr(_ ino: InodeNumber, name: [UInt8]) throws -> [UInt8] { throw Errno.notSupported }
    public func listxattr(_ ino: InodeNumber) throws -> [[UInt8]] { throw Errno.notSupported }
    public func removexattr(_ ino: InodeNumber, name: [UInt8]) throws { throw Errno.notSupported }

    /// SEEK_DATA / SEEK_HOLE; ENXIO past the end.
    public func seek(_ ino: InodeNumber, offset: UInt64, to target: SeekTarget) throws -> UInt64 { throw Errno.notSupported }

    /// Writes back every dirty page and commits metadata.
    public func sync() throws {}
}

/// mkfs and fsck entry points (no mount needed).
public enum Volume {
    public static func format(image: String, options: FormatOptions) throws { throw Errno.notSupported }
    /// Problems found, one line each; empty when clean. Throws when the image cannot be read as extentfs.
    public static func check(image: String) throws -> [String] { throw Errno.notSupported }
}
