import CFuse
import ExtentFS
import Glibc
import SystemPackage

/// The capabilities (linux/capability.h) the daemon asks about.
enum Capability: UInt64 {
    /// Acts as the owner of any file: here, may change another user's chattr flags.
    case fileOwner = 3
    /// Keeps set-group-ID when setting a POSIX ACL without being in the file's group.
    case keepSetID = 4
    /// May set or clear the immutable and append-only flags.
    case linuxImmutable = 9
    /// What the kernel asks of anyone who reads or writes trusted.* xattrs, and what ext4 and
    /// XFS ask of anyone to whom they list trusted.* names or who sets the filesystem label.
    case systemAdministration = 21
}

/// Whether the process that sent `req` holds `capability` in its effective set. FUSE sends the
/// caller's thread id and not its capabilities: they are read from /proc/TID/status. The
/// caller's thread is blocked in its request meanwhile, so the id is still its own. When they
/// cannot be read, the answer is no, which errs on the side of refusing.
func callerHas(_ capability: Capability, _ req: fuse_req_t?) -> Bool {
    guard let mask = callerCapabilities(req) else { return false }
    return mask & (1 << capability.rawValue) != 0
}

/// The kernel checks getxattr and setxattr of trusted.* itself but passes listxattr on to a
/// FUSE daemon unfiltered: hiding those names is ours.
func callerHasSystemAdministration(_ req: fuse_req_t?) -> Bool {
    callerHas(.systemAdministration, req)
}

/// Whether the process that sent `req` holds CAP_FSETID: what lets whoever sets a POSIX ACL
/// keep a file's set-group-ID bit without being in its group (posix_acl_update_mode). The kernel
/// sends no such flag with SETXATTR (libfuse 3.14 has no FUSE_SETXATTR_EXT), so it is read as
/// above; when it cannot be, the answer is no, which errs on the side of clearing the bit.
func callerMayKeepSetIDBits(_ req: fuse_req_t?) -> Bool {
    callerHas(.keepSetID, req)
}

/// The caller as `caller(req)` has it, with the capabilities chattr flags and the label ask
/// for read from /proc (not assumed from uid 0: a root process may have dropped them).
func callerWithCapabilities(_ req: fuse_req_t?) -> Credentials {
    var credentials = caller(req)
    let mask = callerCapabilities(req) ?? 0
    func has(_ capability: Capability) -> Bool { mask & (1 << capability.rawValue) != 0 }
    credentials.mayChangeImmutableFlags = has(.linuxImmutable)
    credentials.overridesOwnership = has(.fileOwner)
    credentials.administersFileSystems = has(.systemAdministration)
    return credentials
}

/// CapEff of the caller's thread, or nil when it cannot be read.
private func callerCapabilities(_ req: fuse_req_t?) -> UInt64? {
    guard let tid = fuse_req_ctx(req)?.pointee.pid, tid > 0,
          let status = try? readSmallFile("/proc/\(tid)/status") else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
        return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: " \t"), radix: 16)
    }
    return nil
}

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
