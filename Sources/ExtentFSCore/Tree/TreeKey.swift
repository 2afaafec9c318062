/// The key of every item in every tree, as btrfs's: the object it belongs to (an inode number, a
/// directory, a block group), what kind of item it is, and an offset whose meaning the kind gives
/// (a logical file offset, a name hash, a block number). Ordered lexicographically, so all the
/// items of one object are adjacent and, within it, all the items of one kind.
///
/// On disk: 17 bytes, object (8, little-endian), kind (1), offset (8, little-endian), as every
/// other integer of the format.
public struct TreeKey: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var object: UInt64
    public var kind: UInt8
    public var offset: UInt64

    public init(object: UInt64, kind: UInt8, offset: UInt64) {
        self.object = object
        self.kind = kind
        self.offset = offset
    }

    public static let min = TreeKey(object: 0, kind: 0, offset: 0)
    public static let max = TreeKey(object: .max, kind: .max, offset: .max)

    static let encodedSize = 17

    public static func < (lhs: TreeKey, rhs: TreeKey) -> Bool {
        if lhs.object != rhs.object { return lhs.object < rhs.object }
        if lhs.kind != rhs.kind { return lhs.kind < rhs.kind }
        return lhs.offset < rhs.offset
    }

    /// The least key greater than this one; nil for `max`. Resuming a scan after a key uses it.
    public var successor: TreeKey? {
        if offset < .max { return TreeKey(object: object, kind: kind, offset: offset + 1) }
        if kind < .max { return TreeKey(object: object, kind: kind + 1, offset: 0) }
        if object < .max { return TreeKey(object: object + 1, kind: 0, offset: 0) }
        return nil
    }

    /// The greatest key less than this one; nil for `min`.
    public var predecessor: TreeKey? {
        if offset > 0 { return TreeKey(object: object, kind: kind, offset: offset - 1) }
        if kind > 0 { return TreeKey(object: object, kind: kind - 1, offset: .max) }
        if object > 0 { return TreeKey(object: object - 1, kind: .max, offset: .max) }
        return nil
    }

    public var description: String { "(\(object), \(kind), \(offset))" }
}

/// One item as the read side hands it out.
public struct TreeItem: Hashable, Sendable {
    public var key: TreeKey
    public var value: [UInt8]

    public init(key: TreeKey, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}
