import CFuse
import CFuseTransport
import ExtentFS
import SystemPackage

/// The calling process's ids and umask: the owner of anything it creates, and who changes a file's data.
/// Root keeps set-ID bits (CAP_FSETID) unless the request says otherwise.
func caller(_ req: fuse_req_t?) -> Credentials {
    guard let context = fuse_req_ctx(req)?.pointee else { return .root }
    nonisolated(unsafe) let request = req
    let gid = context.gid
    // libfuse fills `umask` for MKNOD, MKDIR and CREATE (0 otherwise), where it is ours to
    // apply (FUSE_DONT_MASK).
    return Credentials(uid: context.uid, gid: gid, umask: UInt32(context.umask)) { group in
        group == gid || supplementaryGroups(of: request).contains(group)
    }
}

/// Who writes, for what the write takes from the file (FileSystem+Privileges.swift): nil for the
/// kernel's writes of its cached pages (mmap), which take nothing, as on every local filesystem.
/// The kernel marks a write by a caller without CAP_FSETID with FUSE_WRITE_KILL_SUIDGID (every
/// direct write; every write once FUSE_HANDLE_KILLPRIV_V2 is on, CFuseTransport).
func writer(_ req: fuse_req_t?) -> Credentials? {
    let flags = fuse_transport_write_flags()
    guard flags & UInt32(FUSE_WRITE_CACHE) == 0 else { return nil }
    var credentials = caller(req)
    credentials.keepsSetIDBits = flags & UInt32(FUSE_WRITE_KILL_SUIDGID) == 0
    return credentials
}

/// Who truncates or chowns, when the kernel left taking the file's privileges to us
/// (FUSE_HANDLE_KILLPRIV_V2): FATTR_KILL_SUIDGID comes with a chown of a file, always, and with a
/// truncate by a caller without CAP_FSETID; a truncate takes the file's capabilities in any case.
func privilegeRemover(_ req: fuse_req_t?, _ changes: AttributeChanges) -> Credentials? {
    guard fuse_transport_killpriv_v2() != 0 else { return nil }
    var credentials = caller(req)
    if fuse_transport_setattr_valid() & UInt32(FATTR_KILL_SUIDGID) != 0 {
        // A chown by root takes set-user-ID too; its set-group-ID only as for a group member.
        let mayKeep = credentials.keepsSetIDBits
        let isMember = credentials.isMember
        credentials.keepsSetIDBits = false
        credentials.isMember = { mayKeep || isMember($0) }
        return credentials
    }
    guard changes.size != nil else { return nil }
    credentials.keepsSetIDBits = true
    return credentials
}

/// The caller's supplementary groups (libfuse reads them from /proc: FUSE does not send them).
/// None when they cannot be read, which errs on the side of the others' bits.
func supplementaryGroups(of req: fuse_req_t?) -> [gid_t] {
    var groups = [gid_t](repeating: 0, count: 64)
    while true {
        let count = fuse_req_getgroups(req, Int32(groups.count), &groups)
        guard count >= 0 else {
            log.warning("cannot read the supplementary groups of a caller: \(Errno(rawValue: -count))")
            return []
        }
        if Int(count) <= groups.count { return Array(groups.prefix(Int(count))) }
        // NGROUPS_MAX is 65536: the count the kernel reports is bounded.
        groups = [gid_t](repeating: 0, count: Int(count))
    }
}
