/// Linux fallocate(2) mode flags (FALLOC_FL_*).
public struct FallocateMode: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let keepSize = FallocateMode(rawValue: 0x01)
    public static let punchHole = FallocateMode(rawValue: 0x02)
    public static let collapseRange = FallocateMode(rawValue: 0x08)
    public static let zeroRange = FallocateMode(rawValue: 0x10)
    public static let insertRange = FallocateMode(rawValue: 0x20)
    public static let unshareRange = FallocateMode(rawValue: 0x40)
}

public enum DedupeStatus: Equatable, Sendable {
    /// The ranges matched and now share blocks.
    case same(bytes: UInt64)
    /// The ranges differ; nothing changed.
    case differs
}

/// One entry of an extent map listing, in bytes (FIEMAP's shape).
public struct MappedExtent: Equatable, Sendable {
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let unwritten = Flags(rawValue: 0x1)
        public static let shared = Flags(rawValue: 0x2)
        public static let delayed = Flags(rawValue: 0x4)
        public static let last = Flags(rawValue: 0x8)
    }
    public var logical: UInt64
    /// 0 for delayed extents.
    public var physical: UInt64
    public var length: UInt64
    public var flags: Flags
}
