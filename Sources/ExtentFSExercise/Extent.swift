import ExtentFS

/// One extent of a file's map as the exerciser sees it, from the engine's `MappedExtent` or the
/// EXTENTFS_IOC_MAP ioctl's `struct extentfs_extent` (bytes, FIEMAP's shape).
public struct Extent: Equatable, Sendable {
    public var logical: UInt64
    public var physical: UInt64
    public var length: UInt64
    /// EXTENTFS_EXTENT_* bits, the same values as `MappedExtent.Flags`.
    public var flags: UInt32

    public static let unwritten: UInt32 = 0x1
    public static let shared: UInt32 = 0x2
    public static let delayed: UInt32 = 0x4
    public static let last: UInt32 = 0x8

    public init(logical: UInt64, physical: UInt64, length: UInt64, flags: UInt32) {
        self.logical = logical
        self.physical = physical
        self.length = length
        self.flags = flags
    }

    init(_ mapped: MappedExtent) {
        self.init(logical: mapped.logical, physical: mapped.physical, length: mapped.length, flags: mapped.flags.rawValue)
    }
}
