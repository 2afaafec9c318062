import ArgumentParser
import CExtentFSIoctl
import ExtentFSFuse
import SystemPackage

/// FILE OFFSET LENGTH, shared by the commands that change one range of one file.
struct RangeArguments: ParsableArguments {
    @Argument(help: ArgumentHelp("The file to change (writable by you).", valueName: "FILE"))
    var file: String

    @Argument(help: ArgumentHelp("Where the range starts: bytes, or with a K, M, G or T suffix (powers of 1024).",
                              valueName: "OFFSET"))
    var offset: ByteSize

    @Argument(help: ArgumentHelp("How long the range is, likewise.", valueName: "LENGTH"))
    var length: ByteSize

    /// fallocate(2) in `mode` (punch, zero, prealloc: on any filesystem that has it).
    func fallocate(_ command: String, mode: Int32) throws {
        try runningSpaceCommand(command) {
            let target = try SpaceFile.open(file, .writeOnly)
            defer { target.close() }
            try target.fallocate(mode: mode, offset: offset.bytes, length: length.bytes)
        }
    }

    /// The extentfs ioctl `ioctl` with this range (collapse, insert, unshare).
    func rangeIoctl(_ command: String, _ ioctl: UInt32) throws {
        try runningSpaceCommand(command) {
            let target = try SpaceFile.open(file, .writeOnly)
            defer { target.close() }
            try target.requireExtentFSMount()
            var range = extentfs_range_args(offset: offset.bytes, length: length.bytes)
            try target.ioctl(ioctl, &range)
            // The kernel learns of a smaller file only when it asks (extentfs_ioctl.h); the
            // collapse is done, so a failure here is not the command's.
            if ioctl == ExtentFSIoctl.collapseRange { _ = extentfs_refresh_size(target.descriptor.rawValue) }
        }
    }
}

struct Punch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Free a range's blocks; it reads as zeros and the size stays (fallocate PUNCH_HOLE).")

    @OptionGroup var range: RangeArguments

    func run() throws {
        try range.fallocate("punch", mode: FallocateFlags.punchHole | FallocateFlags.keepSize)
    }
}

struct Zero: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a range read as zeros, keeping it allocated (fallocate ZERO_RANGE).",
        discussion: "The file grows to cover the range unless --keep-size is given.")

    @OptionGroup var range: RangeArguments

    @Flag(help: "Leave the file size as it is, even if the range reaches past it.")
    var keepSize = false

    func run() throws {
        try range.fallocate("zero", mode: FallocateFlags.zeroRange | (keepSize ? FallocateFlags.keepSize : 0))
    }
}

struct Prealloc: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Allocate blocks for a range without writing it (fallocate mode 0).",
        discussion: "The file grows to cover the range unless --keep-size is given.")

    @OptionGroup var range: RangeArguments

    @Flag(help: "Leave the file size as it is, even if the range reaches past it.")
    var keepSize = false

    func run() throws {
        try range.fallocate("prealloc", mode: keepSize ? FallocateFlags.keepSize : 0)
    }
}

struct Collapse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a range; the rest of the file moves down (fallocate COLLAPSE_RANGE).",
        discussion: """
            OFFSET and LENGTH must be multiples of the block size (st_blksize) and the range must \
            end before the end of the file.
            """)

    @OptionGroup var range: RangeArguments

    func run() throws {
        try range.rangeIoctl("collapse", ExtentFSIoctl.collapseRange)
    }
}

struct Insert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Insert a hole; the rest of the file moves up (fallocate INSERT_RANGE).",
        discussion: """
            OFFSET and LENGTH must be multiples of the block size (st_blksize) and OFFSET must be \
            before the end of the file.
            """)

    @OptionGroup var range: RangeArguments

    func run() throws {
        try range.rangeIoctl("insert", ExtentFSIoctl.insertRange)
    }
}

struct Unshare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give a range its own copy of blocks it shares with other files (fallocate UNSHARE_RANGE).")

    @OptionGroup var range: RangeArguments

    func run() throws {
        try range.rangeIoctl("unshare", ExtentFSIoctl.unshareRange)
    }
}
