import SystemPackage

/// What the tree throws besides the device's and the allocator's own errors (which it passes on
/// unchanged: Errno.ioError from a read, Errno.noSpace from allocateNode).
public enum TreeError: Error, Equatable, CustomStringConvertible {
    /// The value is longer than `BTree.maxValueSize(nodeSize:)`; the caller splits it into items.
    case valueTooLarge(size: Int, limit: Int)
    /// A node failed a check when read: checksum, magic, owner, level, generation, its own
    /// address, counts, offsets, key order or the key range its parent gives it. `address` is
    /// where it was read from; nothing in it was used.
    case corruptNode(address: UInt64, reason: String)
    /// `commit(generation:)` was given a generation not above the one already on disk: stale-node
    /// detection depends on every commit's generation being new.
    case generationNotNewer(given: UInt64, committed: UInt64)
    /// The device's node size is outside 512...65536.
    case unsupportedNodeSize(Int)

    /// The errno a request that ran into this should return: a value too long for an item is the
    /// caller's E2BIG, a damaged node is EIO.
    public var errno: Errno {
        switch self {
        case .valueTooLarge: return .argListTooLong
        case .corruptNode, .generationNotNewer, .unsupportedNodeSize: return .ioError
        }
    }

    public var description: String {
        switch self {
        case let .valueTooLarge(size, limit): return "tree value of \(size) bytes exceeds the limit of \(limit)"
        case let .corruptNode(address, reason): return "tree node at \(address) is damaged: \(reason)"
        case let .generationNotNewer(given, committed):
            return "commit generation \(given) is not above the committed generation \(committed)"
        case let .unsupportedNodeSize(size): return "node size \(size) is outside 512...65536"
        }
    }
}
