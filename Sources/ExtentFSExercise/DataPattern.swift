import CExerciseSyscalls

/// The bytes a write puts at each file offset: a function of the write's tag and the offset, so
/// operations store only the tag, and data that lands shifted (a wrong collapse or insert) or
/// stale (an old write's tag) never matches by accident.
public enum DataPattern {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, fileOffset: UInt64, tag: UInt32) {
        guard let start = buffer.baseAddress else { return }
        exercise_fill_pattern(start.assumingMemoryBound(to: UInt8.self), buffer.count, fileOffset, tag)
    }

    public static func bytes(count: Int, fileOffset: UInt64, tag: UInt32) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer), fileOffset: fileOffset, tag: tag)
            initialized = count
        }
    }
}
