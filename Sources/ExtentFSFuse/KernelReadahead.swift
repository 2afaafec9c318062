import Glibc
import SystemPackage

/// The kernel reads a FUSE file ahead by its mount's read_ahead_kb, which FUSE_INIT's
/// max_readahead can only lower (the kernel keeps the smaller of the two), so every FUSE mount
/// starts at the kernel's default of 128 KiB whatever the daemon asks for. A cold sequential read
/// then reaches the daemon as READs of 128 KiB, one or two in flight, each a round trip through
/// the daemon and a read of the image. Raised to the largest READ the daemon takes
/// (`maxTransferBytes`, also its max_readahead), the kernel asks for 1 MiB at a time and ahead:
/// cold sequential reads of 1 MiB went from 509-639 MiB/s to 849-1,056, of 128 KiB from 598-632
/// to 961-1,014, with a third less daemon CPU, and random 4 KiB reads were unchanged (the kernel
/// does not read ahead of those); 512 KiB and 2 MiB measured in between (docs/PERFORMANCE.md).
///
/// The knob is sysfs's /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, writable by root only: a mount
/// by another user keeps the default (logged), as does one where sysfs is read-only.
func raiseKernelReadahead(device: UInt, to bytes: UInt32) {
    let path = "/sys/class/bdi/\(deviceMajor(UInt64(device))):\(deviceMinor(UInt64(device)))/read_ahead_kb"
    let value = Array("\(bytes / 1024)\n".utf8)
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else {
        return log.notice("kernel readahead stays at its default: cannot open \(path): \(Errno(rawValue: errno))")
    }
    defer { close(fd) }
    let written = value.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    if written != value.count {
        log.notice("kernel readahead stays at its default: cannot write \(path): \(Errno(rawValue: errno))")
    }
}
