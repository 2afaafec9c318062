import CFuse
import Glibc
import SystemPackage

/// Whether the process that sent `req` holds CAP_SYS_ADMIN in its effective set: what the
/// kernel asks of anyone who reads or writes trusted.* xattrs, and what ext4 and XFS ask of
/// anyone to whom they list trusted.* names. The kernel checks the first itself but passes
/// listxattr on to a FUSE daemon unfiltered, with the caller's thread id and not its
/// capabilities: they are read from /proc/TID/status. The caller's thread is blocked in its
/// request meanwhile, so the id is still its own. When they cannot be read, the answer is no,
/// which errs on the side of hiding.
func callerHasSystemAdministration(_ req: fuse_req_t?) -> Bool {
    callerHasCapability(req, capSysAdmin)
}

/// Whether the process that sent `req` holds CAP_FSETID: what lets whoever sets a POSIX ACL
/// keep a file's set-group-ID bit without being in its group (posix_acl_update_mode). The kernel
/// sends no such flag with SETXATTR (libfuse 3.14 has no FUSE_SETXATTR_EXT), so it is read as
/// above; when it cannot be, the answer is no, which errs on the side of clearing the bit.
func callerMayKeepSetIDBits(_ req: fuse_req_t?) -> Bool {
    callerHasCapability(req, capFsetid)
}

private func callerHasCapability(_ req: fuse_req_t?, _ capability: UInt64) -> Bool {
    guard let tid = fuse_req_ctx(req)?.pointee.pid, tid > 0,
          let status = try? readSmallFile("/proc/\(tid)/status") else { return false }
    for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
        guard let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: " \t"), radix: 16) else { return false }
        return mask & (1 << capability) != 0
    }
    return false
}

/// Capability bits (linux/capability.h).
private let capSysAdmin: UInt64 = 21
private let capFsetid: UInt64 = 4

private func readSmallFile(_ path: String) throws -> String {
    let file = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
    defer { try? file.close() }
    var bytes = [UInt8](repeating: 0, count: 8192)
    let count = try bytes.withUnsafeMutableBytes { try file.read(into: $0) }
    return String(decoding: bytes.prefix(count), as: UTF8.self)
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result = result.dropFirst() }
        while let last = result.last, set.contains(last) { result = result.dropLast() }
        return result
    }
}
