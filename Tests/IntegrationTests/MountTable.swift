import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads /proc/self/mountinfo.
enum MountTable {
    struct Entry {
        var mountPoint: String
        var fileSystemType: String
        var source: String
        /// "major:minor"; for FUSE the minor names the connection in /sys/fs/fuse/connections.
        var device: String
        /// This mount's flags (rw or ro, nodev, noatime ...).
        var mountOptions: [String] = []
        /// The superblock's options, shared by every mount of the filesystem (rw or ro, sync,
        /// allow_other ...).
        var superOptions: [String] = []
    }

    static func entries() -> [Entry] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let halves = line.components(separatedBy: " - ")
            guard halves.count >= 2 else { return nil }
            let head = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard head.count >= 5, tail.count >= 2 else { return nil }
            return Entry(mountPoint: unescape(String(head[4])), fileSystemType: String(tail[0]), source: unescape(String(tail[1])),
                         device: String(head[2]), mountOptions: head.count > 5 ? head[5].split(separator: ",").map(String.init) : [],
                         superOptions: tail.count > 2 ? tail[2].split(separator: ",").map(String.init) : [])
        }
    }

    static func entry(at path: String) -> Entry? {
        let target = canonical(path)
        return entries().last { $0.mountPoint == target }
    }

    static func isMounted(_ path: String) -> Bool { entry(at: path) != nil }

    static func mountPoints(under directory: String) -> [String] {
        let prefix = canonical(directory) + "/"
        return entries().map(\.mountPoint).filter { $0.hasPrefix(prefix) }
    }

    /// Resolves the parent only: resolving the mount point itself would ask its daemon, which
    /// may be hung or gone.
    /// (URL(fileURLWithPath:) without isDirectory stats the path to find out: not here.)
    static func canonical(_ path: String) -> String {
        let url = URL(fileURLWithPath: path, isDirectory: false)
        let parent = url.deletingLastPathComponent().path
        guard let resolved = realpath(parent, nil) else { return url.standardized.path }
        defer { free(resolved) }
        let resolvedParent = String(cString: resolved)
        return (resolvedParent == "/" ? "" : resolvedParent) + "/" + url.lastPathComponent
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    private static func unescape(_ field: String) -> String {
        field.replacingOccurrences(of: "\\040", with: " ")
            .replacingOccurrences(of: "\\011", with: "\t")
            .replacingOccurrences(of: "\\012", with: "\n")
            .replacingOccurrences(of: "\\134", with: "\\")
    }
}
