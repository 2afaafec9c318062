import CFuse
import ExtentFS
import SystemPackage

func installXattrOps(_ ops: inout fuse_lowlevel_ops) {
    ops.setxattr = { req, ino, name, value, size, flags in
        handle(req) { fs in
            let bytes = [UInt8](UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size))
            let name = nameBytes(name)
            // Who sets it matters for a POSIX ACL only (set-group-ID may go with it).
            var setter: Credentials?
            if FileSystem.isPosixACLName(name) {
                setter = caller(req)
                setter?.keepsSetIDBits = callerMayKeepSetIDBits(req)
            }
            try fs.setxattr(ino, name: name, value: bytes, flags: XattrFlags(rawValue: flags), changedBy: setter)
            replyOK(req)
        }
    }
    ops.getxattr = { req, ino, name, size in
        handle(req) { fs in
            try replySized(req, try fs.getxattr(ino, name: nameBytes(name)), limit: size)
        }
    }
    ops.listxattr = { req, ino, size in
        handle(req) { fs in
            var list: [UInt8] = []
            // trusted.* names only to CAP_SYS_ADMIN, as ext4 and XFS list them.
            for name in try fs.listxattr(ino, includingTrusted: callerHasSystemAdministration(req)) {
                list += name
                list.append(0)
            }
            try replySized(req, list, limit: size)
        }
    }
    ops.removexattr = { req, ino, name in
        handle(req) { fs in
            try fs.removexattr(ino, name: nameBytes(name))
            replyOK(req)
        }
    }
}

/// The xattr size protocol: a limit of 0 asks only for the size; a smaller limit is ERANGE.
private func replySized(_ req: fuse_req_t?, _ value: [UInt8], limit: Int) throws {
    if limit == 0 {
        fuse_reply_xattr(req, value.count)
        return
    }
    guard value.count <= limit else { throw Errno.outOfRange }
    value.withUnsafeBytes { bytes in
        _ = fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }
}
