/// A run of contiguous physical blocks.
public struct BlockRun: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var count: UInt64

    public init(start: UInt64, count: UInt64) {
        self.start = start
        self.count = count
    }
    public var end: UInt64 { start + count }
    public var description: String { "[\(start), +\(count))" }

    func overlaps(_ other: BlockRun) -> Bool { start < other.end && other.start < end }
}
