import Glibc

/// The st_dev of the extentfs mount on `mountpoint` (canonical, as the kernel lists it), read
/// from /proc/self/mountinfo: the topmost such mount, since later lines stack over earlier ones.
func mountedDevice(at mountpoint: String) -> UInt? {
    guard let text = try? readProcFile("/proc/self/mountinfo") else { return nil }
    var found: UInt?
    for line in text.split(separator: "\n") {
        // "id parent major:minor root mountpoint options [optional...] - type source superoptions"
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count > 6, unescapeMountinfo(fields[4]) == mountpoint,
              let dash = fields[6...].firstIndex(of: "-"), dash + 1 < fields.count,
              fields[dash + 1].hasSuffix(".extentfs")
        else { continue }
        let numbers = fields[2].split(separator: ":")
        guard numbers.count == 2, let major = UInt(numbers[0]), let minor = UInt(numbers[1]) else { continue }
        found = deviceNumber(major: major, minor: minor)
    }
    return found
}

/// `mountpoint` with symlinks resolved, to compare with mountinfo. Call it before mounting: once
/// the mount is up, resolving its root would ask the daemon itself.
func canonicalMountpoint(_ mountpoint: String) -> String {
    guard let resolved = realpath(mountpoint, nil) else { return mountpoint }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// glibc's makedev(), a macro Swift cannot call.
func deviceNumber(major: UInt, minor: UInt) -> UInt {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
}

/// The kernel writes space, tab, newline and backslash in mountinfo paths as \ooo escapes.
private func unescapeMountinfo(_ field: Substring) -> String {
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
