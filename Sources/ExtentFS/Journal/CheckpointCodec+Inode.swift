import ExtentFSCore

// The checkpoint codec (ExtentFSCore/Journal/CheckpointCodec.swift) encodes and decodes
// InodeImage, an inode's persisted fields; the engine's Inode also holds the inode's pages. These
// make one from the other, and give the engine's callers the codec in Inodes.

extension InodeImage {
    /// Caller holds Metadata.lock. The size is the durable one: it covers no unwritten data.
    init(_ inode: Inode) {
        self.init(ino: inode.ino, mode: inode.mode, nlink: inode.nlink, uid: inode.uid, gid: inode.gid, rdev: inode.rdev,
                  size: inode.durableSize, atime: inode.atime, mtime: inode.mtime, ctime: inode.ctime, btime: inode.btime,
                  flags: inode.flags, generation: inode.generation, parent: inode.parent, xattrs: inode.xattrs,
                  extents: inode.extents, symlinkTarget: inode.symlinkTarget, directory: inode.directory,
                  changedEntryCookies: inode.checkpointEntryCookies, changedExtentRange: inode.checkpointExtentRange)
    }
}

extension Inode {
    /// The inode a decoded image describes (CheckpointCodec.decodeImage): its fields set in the
    /// order the decoder set them when it made the Inode itself, the type's own (extents, target,
    /// entries) only for that type. A function, not an initializer: the properties' observers
    /// must run as they did then (the durable size follows the size; an extent map set marks the
    /// extents not known to be in the tree). Flags an image's layout does not hold decode as none,
    /// a new Inode's.
    static func decoded(_ image: InodeImage, cache: PageCache?) -> Inode {
        let inode = Inode(ino: image.ino, mode: image.mode, uid: image.uid, gid: image.gid, time: image.atime, cache: cache)
        inode.nlink = image.nlink
        inode.rdev = image.rdev
        inode.size = image.size
        inode.mtime = image.mtime
        inode.ctime = image.ctime
        inode.btime = image.btime
        inode.generation = image.generation
        inode.parent = image.parent
        inode.flags = image.flags
        inode.xattrs = image.xattrs
        switch image.type {
        case .regular: inode.extents = image.extents
        case .symlink: inode.symlinkTarget = image.symlinkTarget
        case .directory: inode.directory = image.directory
        default: break
        }
        return inode
    }
}

extension CheckpointCodec {
    /// Caller holds Metadata.lock: copies every inode (cheap), to be encoded without the lock.
    static func snapshot(_ metadata: Metadata) -> (nextInode: InodeNumber, inodes: [InodeImage], referenceCounts: ReferenceCounts) {
        var images: [InodeImage] = []
        images.reserveCapacity(metadata.inodes.count)
        for inode in metadata.inodes.values { images.append(InodeImage(inode)) }
        return (metadata.nextInode, images, metadata.referenceCounts)
    }

    /// A whole checkpoint's payload (versions 2 and 3), its inodes made with `cache`.
    static func decode(_ bytes: [UInt8], superblock: Superblock, cache: PageCache?) throws -> (InodeNumber, [Inode], ReferenceCounts) {
        let (nextInode, images, referenceCounts) = try decode(bytes, superblock: superblock)
        return (nextInode, images.map { Inode.decoded($0, cache: cache) }, referenceCounts)
    }

    /// An inode image of `layout`, as an Inode made with `cache`.
    static func decodeInode(_ reader: inout ByteReader, superblock: Superblock, layout: InodeImageLayout,
                            cache: PageCache?) throws -> Inode {
        Inode.decoded(try decodeImage(&reader, superblock: superblock, layout: layout), cache: cache)
    }
}
