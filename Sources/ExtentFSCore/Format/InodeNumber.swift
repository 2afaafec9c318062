/// Inode numbers are the FUSE node ids: the root is 1, numbers are never reused while mounted.
public typealias InodeNumber = UInt64
