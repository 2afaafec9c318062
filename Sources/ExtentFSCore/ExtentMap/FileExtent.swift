/// One mapping of a file's logical blocks to physical blocks.
public struct FileExtent: Equatable, Sendable {
    public enum State: UInt8, Sendable {
        /// Holds the file's data.
        case written = 0
        /// Allocated, reads as zeros until written (preallocation).
        case unwritten = 1
        /// Delayed allocation: space reserved, no physical block yet. In memory only; never
        /// in a checkpoint (writeback turns it into `written` before a commit records it).
        case delayed = 2
    }

    public var logical: UInt64
    public var length: UInt64
    /// Meaningless for `.delayed`.
    public var physical: UInt64
    public var state: State

    public init(logical: UInt64, length: UInt64, physical: UInt64, state: State) {
        self.logical = logical
        self.length = length
        self.physical = physical
        self.state = state
    }

    public var logicalEnd: UInt64 { logical + length }
    /// u64 logical block, u64 length, u64 physical block, u8 state: an extent in a checkpoint.
    package static let encodedBytes = 25
    package var physicalRun: BlockRun { BlockRun(start: physical, count: length) }

    /// The part of this extent within [from, to), which must overlap it.
    package func clipped(from: UInt64, to: UInt64) -> FileExtent {
        let start = max(logical, from)
        let end = min(logicalEnd, to)
        let shift = start - logical
        return FileExtent(logical: start, length: end - start,
                          physical: state == .delayed ? 0 : physical + shift, state: state)
    }

    /// Whether `next` continues this extent logically and physically in the same state.
    package func canMerge(with next: FileExtent) -> Bool {
        guard logicalEnd == next.logical, state == next.state else { return false }
        return state == .delayed || physical + length == next.physical
    }
}
