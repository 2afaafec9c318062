import SystemPackage

/// One line of /proc/self/mountinfo, the fields extentfs needs. Shared by the adapter (the
/// mount's st_dev, for EXDEV checks) and the CLI (umount, "is this file on extentfs").
public struct MountEntry {
    public var mountpoint: String
    public var fileSystemType: String
    /// For extentfs, the fsname: the absolute image path or the NBD URI.
    public var source: String
    /// "major:minor", the st_dev of files on the mount.
    public var device: String
    /// The superblock's options ("rw" or "ro" first): shared by every mount of the filesystem,
    /// and what `mount -o remount,ro` changes.
    public var superOptions: [String] = []

    public var isExtentFS: Bool { fileSystemType == "fuse.extentfs" }

    /// The topmost mount on `mountpoint` (later lines stack over earlier ones), if any.
    public static func current(at mountpoint: String) throws -> MountEntry? {
        try all().last { $0.mountpoint == mountpoint }
    }

    public static func all() throws -> [MountEntry] {
        try readProcFile("/proc/self/mountinfo").split(separator: "\n").compactMap(parse)
    }

    /// "id parent major:minor root mountpoint options [optional fields...] - type source superoptions"
    static func parse(_ line: Substring) -> MountEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 10, let dash = fields[6...].firstIndex(of: "-"), dash + 2 < fields.count
        else { return nil }
        let superOptions = dash + 3 < fields.count ? fields[dash + 3].split(separator: ",").map(String.init) : []
        return MountEntry(mountpoint: unescape(fields[4]), fileSystemType: unescape(fields[dash + 1]),
                          source: unescape(fields[dash + 2]), device: String(fields[2]), superOptions: superOptions)
    }

    /// The kernel writes space, tab, newline and backslash as \ooo octal escapes.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var index = 0
        while index < raw.count {
            if raw[index] == UInt8(ascii: "\\"), index + 3 < raw.count,
               let value = UInt8(String(decoding: raw[(index + 1)...(index + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(raw[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The whole text of a /proc file. Read in a loop, since /proc reports a size of 0.
public func readProcFile(_ path: String) throws -> String {
    let descriptor = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
    defer { try? descriptor.close() }
    var bytes: [UInt8] = []
    try withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { chunk in
        while true {
            let count = try descriptor.read(into: chunk)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
