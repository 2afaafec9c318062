import SystemPackage

/// One line of /proc/self/mountinfo, the fields extentfs needs.
struct MountEntry {
    var mountpoint: String
    var fileSystemType: String
    /// For extentfs, the fsname: the absolute image path.
    var source: String
    /// "major:minor", the st_dev of files on the mount.
    var device: String

    /// The topmost mount on `mountpoint` (later lines stack over earlier ones), if any.
    static func current(at mountpoint: String) throws -> MountEntry? {
        try all().last { $0.mountpoint == mountpoint }
    }

    static func all() throws -> [MountEntry] {
        let text = try readWholeFile("/proc/self/mountinfo")
        return text.split(separator: "\n").compactMap(parse)
    }

    /// "id parent major:minor root mountpoint options [optional fields...] - type source superoptions"
    static func parse(_ line: Substring) -> MountEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 10, let dash = fields[6...].firstIndex(of: "-"), dash + 2 < fields.count
        else { return nil }
        return MountEntry(mountpoint: unescape(fields[4]), fileSystemType: unescape(fields[dash + 1]),
                          source: unescape(fields[dash + 2]), device: String(fields[2]))
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

/// For /proc files, whose size stat reports as 0.
func readWholeFile(_ path: String) throws -> String {
    let descriptor = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
    defer { try? descriptor.close() }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
