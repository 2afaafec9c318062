import Glibc

/// The st_dev of the extentfs mount on `mountpoint` (canonical, as the kernel lists it): the
/// topmost such mount, since later lines of mountinfo stack over earlier ones.
func mountedDevice(at mountpoint: String) -> UInt? {
    guard let entry = (try? MountEntry.all())?.last(where: { $0.mountpoint == mountpoint && $0.fileSystemType.hasSuffix(".extentfs") })
    else { return nil }
    let numbers = entry.device.split(separator: ":")
    guard numbers.count == 2, let major = UInt(numbers[0]), let minor = UInt(numbers[1]) else { return nil }
    return deviceNumber(major: major, minor: minor)
}

/// `mountpoint` with symlinks resolved, to compare with mountinfo. Call it before mounting: once
/// the mount is up, resolving its root would ask the daemon itself.
func canonicalMountpoint(_ mountpoint: String) -> String {
    guard let resolved = realpath(mountpoint, nil) else { return mountpoint }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// glibc's makedev(), major() and minor(), macros Swift cannot call. Linux's dev_t: minor in bits
/// 0-7 and 20-39, major in bits 8-19 and 44-63.
func deviceNumber(major: UInt, minor: UInt) -> UInt {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
}

func deviceMajor(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: (device >> 8) & 0xfff) | (UInt32(truncatingIfNeeded: device >> 32) & ~0xfff)
}

func deviceMinor(_ device: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: device & 0xff) | (UInt32(truncatingIfNeeded: device >> 12) & ~0xff)
}
