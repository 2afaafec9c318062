import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Everything observable about one directory entry that must survive an unmount.
struct EntrySnapshot: Equatable {
    var type: UInt32
    var permissions: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: Int64
    var nlink: UInt64
    var mtimeNanoseconds: Int64
    var linkTarget: String?
    var xattrs: [String: [UInt8]]
    var content: ContentDigest?
}

/// A recorded directory tree: entries by path relative to the root, plus inode numbers so that
/// hard-link identity can be compared even if inode numbers change across a remount.
struct TreeSnapshot {
    /// Files larger than this are digested in windows, so a 1 GiB sparse file is not read whole.
    static let fullDigestLimit = 16 << 20
    static let windowSize = 1 << 20

    private(set) var entries: [String: EntrySnapshot] = [:]
    private(set) var inodes: [String: UInt64] = [:]

    static func capture(root: String) throws -> TreeSnapshot {
        var snapshot = TreeSnapshot()
        try snapshot.record(root: root, relative: ".")
        return snapshot
    }

    /// Sets of paths that name the same inode (only sets of two or more).
    var hardLinkGroups: Set<[String]> {
        var byInode: [UInt64: [String]] = [:]
        for (path, entry) in entries where entry.type != UInt32(S_IFDIR) {
            byInode[inodes[path]!, default: []].append(path)
        }
        return Set(byInode.values.filter { $0.count > 1 }.map { $0.sorted() })
    }

    /// Human-readable differences; empty when the trees match.
    func differences(from expected: TreeSnapshot) -> [String] {
        var result: [String] = []
        for path in Set(expected.entries.keys).union(entries.keys).sorted() {
            switch (expected.entries[path], entries[path]) {
            case (nil, _?): result.append("\(path): unexpected entry")
            case (_?, nil): result.append("\(path): missing")
            case let (want?, got?) where want != got: result.append("\(path): expected \(want), found \(got)")
            default: break
            }
        }
        if hardLinkGroups != expected.hardLinkGroups {
            result.append("hard links: expected \(expected.hardLinkGroups.sorted { $0[0] < $1[0] }), found \(hardLinkGroups.sorted { $0[0] < $1[0] })")
        }
        return result
    }

    private mutating func record(root: String, relative: String) throws {
        let path = relative == "." ? root : root + "/" + relative
        let st = try fileStatus(path)
        let type = UInt32(st.st_mode) & UInt32(S_IFMT)
        var entry = EntrySnapshot(
            type: type,
            permissions: UInt32(st.st_mode) & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: Int64(st.st_size),
            nlink: UInt64(st.st_nlink),
            mtimeNanoseconds: st.st_mtim.nanoseconds,
            linkTarget: nil,
            xattrs: [:],
            content: nil
        )
        for name in try listXattrs(path) {
            entry.xattrs[name] = try getXattr(path, name)
        }
        switch type {
        case UInt32(S_IFLNK):
            entry.linkTarget = try readSymlink(path)
        case UInt32(S_IFREG):
            entry.content = try TreeSnapshot.digest(path: path, size: Int(st.st_size))
        case UInt32(S_IFDIR):
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                try record(root: root, relative: relative == "." ? name : relative + "/" + name)
            }
        default:
            break
        }
        entries[relative] = entry
        inodes[relative] = UInt64(st.st_ino)
    }

    private static func digest(path: String, size: Int) throws -> ContentDigest {
        let fd = try openFile(path, O_RDONLY)
        defer { close(fd) }
        var digest = ContentDigest()
        if size <= fullDigestLimit {
            digest.update(try readRange(fd, offset: 0, count: size + 1, path: path))
        } else {
            for start in [0, size / 2, size - windowSize] {
                digest.update(try readRange(fd, offset: start, count: windowSize, path: path))
            }
        }
        return digest
    }
}
