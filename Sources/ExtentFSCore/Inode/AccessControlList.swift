import SystemPackage

/// A POSIX access control list, as Linux keeps it in `system.posix_acl_access` and
/// `system.posix_acl_default` (linux/posix_acl_xattr.h): a little-endian u32 version (2), then
/// one 8-byte entry per line of `getfacl`: u16 tag, u16 permissions (rwx = 4, 2, 1), u32 id.
///
/// Invariants of every value this type holds (what `init(xattrValue:)` checks, as the kernel's
/// posix_acl_valid does, plus sorted ids, which POSIX's acl_valid asks and setfacl writes):
/// entries in the order owner, named users (ids strictly ascending), owning group, named groups
/// (ids strictly ascending), mask, other; exactly one owner, owning group and other entry; a
/// mask exactly when there is a named entry, or optionally when there is none; permissions
/// within rwx. The kernel checks what comes through a mount before it reaches the daemon; the
/// engine checks again for in-process callers and for what an image holds.
package struct AccessControlList: Equatable, Sendable {
    package enum Tag: UInt16, Sendable {
        case owner = 0x01        // ACL_USER_OBJ
        case namedUser = 0x02    // ACL_USER
        case owningGroup = 0x04  // ACL_GROUP_OBJ
        case namedGroup = 0x08   // ACL_GROUP
        case mask = 0x10         // ACL_MASK
        case other = 0x20        // ACL_OTHER
    }

    package struct Entry: Equatable, Sendable {
        package var tag: Tag
        /// rwx in the low three bits.
        package var permissions: UInt16
        /// The user or group of a named entry; unused (ACL_UNDEFINED_ID when encoded) otherwise.
        package var id: UInt32
    }

    package static let accessXattrName: [UInt8] = Array("system.posix_acl_access".utf8)
    package static let defaultXattrName: [UInt8] = Array("system.posix_acl_default".utf8)
    package static let version: UInt32 = 2
    package static let undefinedID: UInt32 = .max
    package static let headerBytes = 4
    package static let entryBytes = 8
    /// The kernel reads a FUSE inode's ACL into one page and refuses to set a larger one (E2BIG,
    /// fs/fuse/acl.c): 511 entries.
    package static let maxValueBytes = 4096

    package private(set) var entries: [Entry]

    package static func isACLName(_ name: [UInt8]) -> Bool {
        name == accessXattrName || name == defaultXattrName
    }

    /// Decodes and validates an xattr value: EINVAL for anything malformed, E2BIG past a page.
    package init(xattrValue bytes: [UInt8]) throws {
        guard bytes.count <= Self.maxValueBytes else { throw Errno.argListTooLong }
        guard bytes.count > Self.headerBytes, (bytes.count - Self.headerBytes) % Self.entryBytes == 0,
              Self.u32(bytes, 0) == Self.version else { throw Errno.invalidArgument }
        var entries: [Entry] = []
        entries.reserveCapacity((bytes.count - Self.headerBytes) / Self.entryBytes)
        var offset = Self.headerBytes
        while offset < bytes.count {
            guard let tag = Tag(rawValue: Self.u16(bytes, offset)) else { throw Errno.invalidArgument }
            let permissions = Self.u16(bytes, offset + 2)
            guard permissions & ~0o7 == 0 else { throw Errno.invalidArgument }
            let named = tag == .namedUser || tag == .namedGroup
            entries.append(Entry(tag: tag, permissions: permissions, id: named ? Self.u32(bytes, offset + 4) : Self.undefinedID))
            offset += Self.entryBytes
        }
        guard Self.isWellFormed(entries) else { throw Errno.invalidArgument }
        self.entries = entries
    }

    /// The three entries a mode amounts to.
    package init(mode: UInt32) {
        entries = [Entry(tag: .owner, permissions: UInt16(mode >> 6 & 7), id: Self.undefinedID),
                   Entry(tag: .owningGroup, permissions: UInt16(mode >> 3 & 7), id: Self.undefinedID),
                   Entry(tag: .other, permissions: UInt16(mode & 7), id: Self.undefinedID)]
    }

    /// The canonical xattr value (ids of unnamed entries ACL_UNDEFINED_ID, as the kernel writes them).
    package var xattrValue: [UInt8] {
        var writer = ByteWriter(capacity: Self.headerBytes + Self.entryBytes * entries.count)
        writer.u32(Self.version)
        for entry in entries {
            writer.u16(entry.tag.rawValue)
            writer.u16(entry.permissions)
            writer.u32(entry.tag == .namedUser || entry.tag == .namedGroup ? entry.id : Self.undefinedID)
        }
        return writer.bytes
    }

    /// Whether the list says no more than the permission bits of a mode can (owner, owning group
    /// and other only): such an access ACL is kept as the mode alone (posix_acl_equiv_mode).
    package var isEquivalentToMode: Bool {
        entries.allSatisfy { $0.tag == .owner || $0.tag == .owningGroup || $0.tag == .other }
    }

    /// The permission bits the list implies: owner, then the mask if there is one (it bounds
    /// every group-class entry, so it is what ls shows as the group's bits) or else the owning
    /// group, then other.
    package var permissionBits: UInt32 {
        var bits: UInt32 = 0
        for entry in entries {
            switch entry.tag {
            case .owner: bits |= UInt32(entry.permissions) << 6
            case .other: bits |= UInt32(entry.permissions)
            case .mask: bits = bits & ~0o070 | UInt32(entry.permissions) << 3
            case .owningGroup where !hasMask: bits |= UInt32(entry.permissions) << 3
            default: break
            }
        }
        return bits
    }

    package var hasMask: Bool { entries.contains { $0.tag == .mask } }

    /// chmod of a file with this access ACL (posix_acl_chmod): the owner and other entries take
    /// the new owner and other bits, and the group bits go to the mask if there is one (leaving
    /// named entries and the owning group as they are, bounded by it) or else to the owning group.
    package mutating func applyChmod(_ mode: UInt32) {
        let groupTag: Tag = hasMask ? .mask : .owningGroup
        for index in entries.indices {
            switch entries[index].tag {
            case .owner: entries[index].permissions = UInt16(mode >> 6 & 7)
            case .other: entries[index].permissions = UInt16(mode & 7)
            case groupTag: entries[index].permissions = UInt16(mode >> 3 & 7)
            default: break
            }
        }
    }

    /// The access ACL of a new inode whose directory's default ACL this is (posix_acl_create_masq):
    /// `mode`'s permission bits limit the owner, other and group-class (mask, or owning group)
    /// entries, and the mode keeps only what those entries grant. Returns nil when the result
    /// is equivalent to the mode (no named entries, no mask): then the mode alone is stored.
    package func inherited(mode: inout UInt32) -> AccessControlList? {
        var result = self
        let groupTag: Tag = hasMask ? .mask : .owningGroup
        for index in result.entries.indices {
            let entry = result.entries[index]
            let shift: UInt32
            switch entry.tag {
            case .owner: shift = 6
            case .other: shift = 0
            case groupTag: shift = 3
            default: continue
            }
            let permissions = entry.permissions & UInt16(mode >> shift & 7)
            result.entries[index].permissions = permissions
            mode = mode & ~(0o7 << shift) | UInt32(permissions) << shift
        }
        return result.isEquivalentToMode ? nil : result
    }

    /// Whether the list grants `want` (rwx bits) to a caller who is not the owner (the owner's
    /// bits are the mode's, checked before), as the kernel's posix_acl_permission decides: a
    /// named-user entry for the caller, else every group-class entry that matches the caller
    /// (any granting one admits it, but matching one that does not shuts out "other"), each
    /// bounded by the mask; else the other entry.
    package func grants(_ want: UInt16, toUser uid: UInt32, owningGroup gid: UInt32, isMember: (UInt32) -> Bool) -> Bool {
        let mask = entries.first { $0.tag == .mask }?.permissions ?? 0o7
        var matchedGroup = false
        for entry in entries {
            switch entry.tag {
            case .namedUser where entry.id == uid:
                return entry.permissions & mask & want == want
            case .owningGroup where isMember(gid), .namedGroup where isMember(entry.id):
                matchedGroup = true
                if entry.permissions & want == want { return entry.permissions & mask & want == want }
            case .other:
                return !matchedGroup && entry.permissions & want == want
            default:
                break
            }
        }
        return false
    }

    private static func isWellFormed(_ entries: [Entry]) -> Bool {
        // The order of posix_acl_valid's states; a tag may only move forward through them.
        func rank(_ tag: Tag) -> Int {
            switch tag {
            case .owner: 0
            case .namedUser: 1
            case .owningGroup: 2
            case .namedGroup: 3
            case .mask: 4
            case .other: 5
            }
        }
        var counts = [Int](repeating: 0, count: 6)
        var previous: Entry?
        for entry in entries {
            if let previous {
                guard rank(previous.tag) <= rank(entry.tag) else { return false }
                if previous.tag == entry.tag {
                    // Only named entries repeat, each id once, in ascending order.
                    guard entry.tag == .namedUser || entry.tag == .namedGroup, previous.id < entry.id else { return false }
                }
            }
            counts[rank(entry.tag)] += 1
            previous = entry
        }
        let named = counts[1] + counts[3]
        return counts[0] == 1 && counts[2] == 1 && counts[5] == 1 && counts[4] <= 1 && (named == 0 || counts[4] == 1)
    }

    private static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    private static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(u16(bytes, offset)) | UInt32(u16(bytes, offset + 2)) << 16
    }
}

extension AccessControlList {
    /// Whether an image may hold `value` under the ACL xattr `name` on an inode of `mode`: a
    /// valid ACL, and a default one only on a directory (the decoder's check).
    package static func isStorable(_ value: [UInt8], named name: [UInt8], mode: UInt32) -> Bool {
        guard (try? AccessControlList(xattrValue: value)) != nil, FileType(mode: mode) != .symlink else { return false }
        return name != defaultXattrName || FileType(mode: mode) == .directory
    }
}
