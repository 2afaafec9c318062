/// The bytes a write puts at each file offset: a function of the write's tag and the offset, so
/// operations store only the tag, and data that lands shifted (a wrong collapse or insert) or
/// stale (an old write's tag) never matches by accident.
public enum DataPattern {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, fileOffset: UInt64, tag: UInt32) {
        let salt = UInt64(tag) &* 0xD6E8_FEB8_6659_FD93
        var position = fileOffset
        for index in 0..<buffer.count {
            buffer[index] = UInt8(truncatingIfNeeded: ((position ^ salt) &* 0x9E37_79B9_7F4A_7C15) >> 56)
            position &+= 1
        }
    }

    public static func bytes(count: Int, fileOffset: UInt64, tag: UInt32) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer), fileOffset: fileOffset, tag: tag)
            initialized = count
        }
    }
}
