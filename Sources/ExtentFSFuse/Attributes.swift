import CFuse
import ExtentFS
import ExtentFSCore

func statBuffer(_ attributes: FileAttributes) -> stat {
    var st = stat()
    st.st_ino = UInt(attributes.ino)
    st.st_mode = attributes.mode
    st.st_nlink = UInt(attributes.nlink)
    st.st_uid = attributes.uid
    st.st_gid = attributes.gid
    st.st_rdev = UInt(attributes.rdev)
    st.st_size = Int(truncatingIfNeeded: attributes.size)
    st.st_blocks = Int(truncatingIfNeeded: attributes.blocks)
    st.st_blksize = Int(attributes.blockSize)
    st.st_atim = kernelTime(attributes.atime)
    st.st_mtim = kernelTime(attributes.mtime)
    st.st_ctim = kernelTime(attributes.ctime)
    return st
}

func entryParam(_ attributes: FileAttributes) -> fuse_entry_param {
    var entry = fuse_entry_param()
    entry.ino = attributes.ino
    entry.generation = attributes.generation
    entry.attr = statBuffer(attributes)
    entry.attr_timeout = attributeTimeout
    entry.entry_timeout = entryTimeout
    return entry
}

func kernelTime(_ time: Timespec) -> timespec {
    timespec(tv_sec: Int(time.seconds), tv_nsec: Int(time.nanoseconds))
}

func engineTime(_ time: timespec) -> Timespec {
    Timespec(seconds: Int64(time.tv_sec), nanoseconds: Int64(time.tv_nsec))
}

/// Decodes a SETATTR: `valid` says which fields of `attr` mean anything.
func attributeChanges(_ attr: stat, valid: Int32) -> AttributeChanges {
    func has(_ flag: Int32) -> Bool { valid & flag != 0 }
    var changes = AttributeChanges()
    if has(FUSE_SET_ATTR_MODE) { changes.mode = attr.st_mode }
    if has(FUSE_SET_ATTR_UID) { changes.uid = attr.st_uid }
    if has(FUSE_SET_ATTR_GID) { changes.gid = attr.st_gid }
    if has(FUSE_SET_ATTR_SIZE) { changes.size = UInt64(clamping: attr.st_size) }
    if has(FUSE_SET_ATTR_ATIME_NOW) {
        changes.atime = .now
    } else if has(FUSE_SET_ATTR_ATIME) {
        changes.atime = .set(engineTime(attr.st_atim))
    }
    if has(FUSE_SET_ATTR_MTIME_NOW) {
        changes.mtime = .now
    } else if has(FUSE_SET_ATTR_MTIME) {
        changes.mtime = .set(engineTime(attr.st_mtim))
    }
    if has(FUSE_SET_ATTR_CTIME) { changes.ctime = engineTime(attr.st_ctim) }
    return changes
}
