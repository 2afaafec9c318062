import Foundation

/// The bytes the crash workloads write. Every aligned 8-byte word names the file that wrote it,
/// the version of that file it belongs to and its own offset, so a word found after a crash can
/// be traced to its writer: another file's word in a file, or a word of a version the file may
/// no longer have, is evidence, not a coincidence. The tag keeps the words apart from metadata
/// (names and xattr values are ASCII, counts are small), which fault injection relies on to tell
/// a failed data write from a failed metadata write.
enum CrashDataWord {
    static let tag: UInt64 = 0xE5F1

    struct Decoded: Equatable {
        var file: Int
        var version: Int
        /// The word's offset in the file, modulo 128 MiB.
        var offset: Int
    }

    static func make(file: Int, version: Int, offset: Int) -> UInt64 {
        precondition(file < 256 && version < 65536, "workload too large for the word encoding")
        return tag << 48 | UInt64(file) << 40 | UInt64(version) << 24 | UInt64((offset >> 3) & 0xFF_FFFF)
    }

    static func decode(_ word: UInt64) -> Decoded? {
        guard word >> 48 == tag else { return nil }
        return Decoded(file: Int(word >> 40 & 0xFF), version: Int(word >> 24 & 0xFFFF), offset: Int(word & 0xFF_FFFF) << 3)
    }

    /// The bytes `file` writes at [offset, offset + count) in `version`: each byte is its place in
    /// the little-endian word of its aligned 8-byte slot.
    static func bytes(file: Int, version: Int, offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { buffer in
            var position = offset
            while position < offset + count {
                let slot = position & ~7
                let word = make(file: file, version: version, offset: slot).littleEndian
                withUnsafeBytes(of: word) { wordBytes in
                    let from = position - slot
                    let length = min(8 - from, offset + count - position)
                    (buffer.baseAddress! + (position - offset)).copyMemory(from: wordBytes.baseAddress! + from, byteCount: length)
                }
                position = slot + 8
            }
        }
        return bytes
    }

    /// The word at byte `index` of `bytes` (8-aligned, relative to an 8-aligned start).
    static func word(in bytes: UnsafeRawBufferPointer, at index: Int) -> UInt64 {
        var word: UInt64 = 0
        withUnsafeMutableBytes(of: &word) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[index..<min(index + 8, bytes.count)])) }
        return UInt64(littleEndian: word)
    }

    /// The files (among `files`) whose words appear in `bytes`, at any byte position: a
    /// copy_file_range between offsets that differ modulo 8 shifts the words of what it copies.
    /// Tag and file number together make a chance match in metadata negligible.
    static func writers(in bytes: UnsafeRawBufferPointer, among files: Set<Int>) -> Set<Int> {
        var found = Set<Int>()
        var index = 0
        while index + 8 <= bytes.count {
            if bytes[index + 7] == UInt8(tag >> 8), bytes[index + 6] == UInt8(tag & 0xFF), files.contains(Int(bytes[index + 5])) {
                found.insert(Int(bytes[index + 5]))
            }
            index += 1
        }
        return found
    }
}
