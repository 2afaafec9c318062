import SystemPackage

/// An inode's extended attributes, with the limits one user must not blow through and the
/// running totals that enforce them in O(1).
///
/// Limits (docs/FORMAT.md, "Limits"; the kernel enforces the first two itself before a request
/// reaches the daemon, the engine again for in-process callers and images):
/// - a name is 1 to 255 bytes (XATTR_NAME_MAX) in the user., trusted. or security. namespace,
///   or one of the two POSIX ACL names of system. (whose values AccessControlList validates);
/// - a value is at most 64 KiB (XATTR_SIZE_MAX);
/// - the names of one inode, each with its NUL, take at most 64 KiB (XATTR_LIST_MAX), so
///   listxattr always fits the buffer the kernel allows; this also bounds the count (9362 names
///   of the shortest kind, "user.x");
/// - names and values of one inode take at most 128 KiB together: one value of the largest size
///   and as much again. A log record holds the whole image of every inode it changes, so this
///   keeps a chmod of such a file within a quarter of the smallest log (256 KiB), and the
///   memory an inode's xattrs hold bounded (XFS has no such bound; ext4 without ea_inode keeps
///   all of an inode's xattrs in one block).
package struct ExtendedAttributes: Sendable {
    package static let maxNameBytes = 255
    package static let maxValueBytes = 65536
    package static let maxListBytes = 65536
    package static let maxTotalBytes = 128 << 10
    package static let namespaces: [[UInt8]] = ["user.", "trusted.", "security."].map { Array($0.utf8) }

    package private(set) var values: [[UInt8]: [UInt8]] = [:]
    /// Names and values, summed: what `maxTotalBytes` bounds.
    package private(set) var totalBytes = 0
    /// Names, each with its NUL: what listxattr returns.
    package private(set) var listBytes = 0
    /// What they take in a checkpoint: u16 name length, name, u32 value length, value.
    package var encodedBytes: Int { totalBytes + 6 * values.count }

    package init() {}

    package var count: Int { values.count }
    package var isEmpty: Bool { values.isEmpty }

    package subscript(name: [UInt8]) -> [UInt8]? {
        get { values[name] }
        set {
            if let old = values[name] {
                totalBytes -= name.count + old.count
                listBytes -= name.count + 1
            }
            if let newValue {
                totalBytes += name.count + newValue.count
                listBytes += name.count + 1
            }
            values[name] = newValue
        }
    }

    /// Names in byte order: listxattr's order and the checkpoint's.
    package var sortedNames: [[UInt8]] { values.keys.sorted { $0.lexicographicallyPrecedes($1) } }

    /// Whether `name` may be set at all: its length, its namespace, something after the prefix,
    /// no NUL. (The kernel answers ERANGE, EOPNOTSUPP and EINVAL for these; `check(name:)`.)
    package static func isValid(name: [UInt8]) -> Bool {
        (try? check(name: name)) != nil
    }

    /// The kernel's errors for a bad name: ERANGE for its length, EOPNOTSUPP for a namespace
    /// extentfs does not keep (of system.*, only the POSIX ACLs), EINVAL for a prefix with
    /// nothing after it or a NUL inside.
    package static func check(name: [UInt8]) throws {
        guard !name.isEmpty, name.count <= maxNameBytes else { throw Errno.outOfRange }
        if AccessControlList.isACLName(name) { return }
        guard let prefix = namespaces.first(where: { name.starts(with: $0) }) else { throw Errno.notSupported }
        guard name.count > prefix.count, !name.contains(0) else { throw Errno.invalidArgument }
    }

    /// Whether setting `name` to a value of `valueBytes` keeps this inode within its limits.
    package func fits(name: [UInt8], valueBytes: Int) -> Bool {
        let old = values[name]
        let total = totalBytes - (old.map { name.count + $0.count } ?? 0) + name.count + valueBytes
        let list = listBytes + (old == nil ? name.count + 1 : 0)
        return valueBytes <= ExtendedAttributes.maxValueBytes && total <= ExtendedAttributes.maxTotalBytes &&
            list <= ExtendedAttributes.maxListBytes
    }
}
