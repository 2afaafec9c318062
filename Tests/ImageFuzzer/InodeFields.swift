/// The fields of one encoded inode (docs/FORMAT.md, "Inode"), found from its bytes: what a
/// crafted mutation changes so that one value of an inode is hostile and the rest still parses.
/// Read as the format describes it, not through the engine's decoder; a field whose bytes run
/// past the end is left out, and the parse stops at the first length that does not fit.
enum InodeFields {
    struct Field {
        var name: String
        /// Byte offset in the encoded inode.
        var offset: Int
        var width: Int
    }

    /// Lists are read up to this many entries: enough for every base image, and a bound.
    static let maxListed = 256

    /// `flagsAndBirthTime`: the layout of format version 6 on (the base images' trees), with
    /// btime after ctime and the flags after the parent.
    static func parse(_ bytes: [UInt8], flagsAndBirthTime: Bool = true) -> [Field] {
        var fields: [Field] = []
        var offset = 0
        @discardableResult
        func field(_ name: String, _ width: Int) -> UInt64? {
            guard offset + width <= bytes.count else { return nil }
            fields.append(Field(name: name, offset: offset, width: width))
            defer { offset += width }
            return ImageLayout.read(bytes, offset, width)
        }
        func skip(_ length: UInt64) -> Bool {
            guard length <= UInt64(bytes.count - offset) else { return false }
            offset += Int(length)
            return true
        }
        field("ino", 8)
        guard let mode = field("mode", 4) else { return fields }
        for (name, width) in [("nlink", 4), ("uid", 4), ("gid", 4), ("rdev", 8), ("size", 8)] { field(name, width) }
        for time in ["atime", "mtime", "ctime"] + (flagsAndBirthTime ? ["btime"] : []) {
            field(time + " seconds", 8)
            field(time + " nanoseconds", 4)
        }
        field("generation", 8)
        field("parent", 8)
        if flagsAndBirthTime { field("flags", 4) }
        guard let xattrs = field("xattr count", 8) else { return fields }
        for index in 0..<min(xattrs, UInt64(maxListed)) {
            guard let nameLength = field("xattr \(index) name length", 2), skip(nameLength),
                  let valueLength = field("xattr \(index) value length", 4), skip(valueLength) else { return fields }
        }
        switch mode & 0o170000 {
        case 0o100000:
            guard let extents = field("extent count", 8) else { return fields }
            for index in 0..<min(extents, UInt64(maxListed)) {
                for (name, width) in [("logical", 8), ("length", 8), ("physical", 8), ("state", 1)] {
                    guard field("extent \(index) \(name)", width) != nil else { return fields }
                }
            }
        case 0o120000:
            field("symlink target length", 2)
        case 0o040000:
            field("next cookie", 8)
            guard let entries = field("entry count", 8) else { return fields }
            for index in 0..<min(entries, UInt64(maxListed)) {
                guard field("entry \(index) ino", 8) != nil, field("entry \(index) cookie", 8) != nil,
                      field("entry \(index) type", 1) != nil, let nameLength = field("entry \(index) name length", 2),
                      skip(nameLength) else { return fields }
            }
            // Version 7 (the base images' trees): every entry's count and checkpoint bytes.
            field("entry total count", 8)
            field("entry total bytes", 8)
        default:
            break
        }
        return fields
    }
}
