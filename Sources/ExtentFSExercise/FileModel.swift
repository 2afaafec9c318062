import CExerciseSyscalls
#if canImport(Glibc)
import Glibc
#endif

/// What the exerciser knows of one file: every byte, and which blocks are surely unmapped.
public struct FileModel: Sendable {
    /// The file's bytes; `contents.count` is the size.
    public private(set) var contents: [UInt8] = []
    /// Per block: true where the block surely has no extent at all (a new file, or a punch,
    /// truncate or insert made it a hole, and nothing has touched it since). Only these holes are
    /// exact on every filesystem: unwritten extents may show as data (a dirty page over them, or
    /// a page holding several blocks), so they count as unknown. Past the end: unmapped.
    private var unmapped: [Bool] = []
    public let blockSize: Int

    public init(blockSize: Int) { self.blockSize = blockSize }

    public var size: UInt64 { UInt64(contents.count) }

    public func isUnmapped(block: Int) -> Bool { block >= unmapped.count || unmapped[block] }

    // MARK: Contents

    /// Sets bytes, growing the file when they reach past EOF.
    public mutating func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        growWithZeros(to: offset + bytes.count)
        contents.withUnsafeMutableBytes { (destination: UnsafeMutableRawBufferPointer) in
            guard let to = destination.baseAddress, let from = bytes.baseAddress else { return }
            (to + offset).copyMemory(from: from, byteCount: bytes.count)
        }
        markMapped(offset, offset + bytes.count)
    }

    /// Zeros [from, to) ∩ [0, size); the size never changes.
    public mutating func zero(_ from: Int, _ to: Int) {
        let end = min(to, contents.count)
        guard from < end else { return }
        contents.withUnsafeMutableBytes { buffer in
            _ = (buffer.baseAddress! + from).initializeMemory(as: UInt8.self, repeating: 0, count: end - from)
        }
    }

    public mutating func growWithZeros(to size: Int) {
        var missing = size - contents.count
        while missing > 0 {
            let chunk = min(missing, ZeroBytes.count)
            contents.append(contentsOf: UnsafeBufferPointer(rebasing: ZeroBytes.buffer[0..<chunk]))
            missing -= chunk
        }
    }

    public mutating func truncate(to size: Int) {
        if size >= contents.count {
            growWithZeros(to: size)
            return
        }
        contents.removeLast(contents.count - size)
        // The EOF block keeps its blocks (its tail is zeroed); every block after it is unmapped.
        let firstWhole = (size + blockSize - 1) / blockSize
        if unmapped.count > firstWhole { unmapped.removeSubrange(firstWhole...) }
        if size % blockSize != 0 { markMapped(size, size + 1) }
    }

    /// Collapse: [offset, offset + length) disappears, everything after moves down. Aligned.
    public mutating func remove(_ offset: Int, _ length: Int) {
        let size = contents.count
        contents.withUnsafeMutableBytes { bytes in
            let base = bytes.baseAddress!
            base.advanced(by: offset).copyMemory(from: base + offset + length, byteCount: size - offset - length)
        }
        contents.removeLast(length)
        let first = offset / blockSize
        let end = (offset + length) / blockSize
        coverBlocks(end)
        unmapped.removeSubrange(first..<end)
    }

    /// Insert: a hole of `length` at `offset`, everything after moves up. Aligned.
    public mutating func insertHole(_ offset: Int, _ length: Int) {
        let oldSize = contents.count
        growWithZeros(to: oldSize + length)
        contents.withUnsafeMutableBytes { bytes in
            let base = bytes.baseAddress!
            (base + offset + length).copyMemory(from: base + offset, byteCount: oldSize - offset)
            _ = (base + offset).initializeMemory(as: UInt8.self, repeating: 0, count: length)
        }
        let first = offset / blockSize
        coverBlocks(first)
        unmapped.insert(contentsOf: repeatElement(true, count: length / blockSize), at: first)
    }

    /// Whether [offset, offset + count) here holds the same bytes as [otherOffset, ...) of `other`.
    public func bytesEqual(_ offset: Int, _ other: FileModel, _ otherOffset: Int, count: Int) -> Bool {
        guard count > 0 else { return true }
        return contents.withUnsafeBufferPointer { mine in
            other.contents.withUnsafeBufferPointer { theirs in
                memcmp(mine.baseAddress! + offset, theirs.baseAddress! + otherOffset, count) == 0
            }
        }
    }

    // MARK: Block knowledge

    /// Blocks that [from, to) touches may now have extents: they become unknown.
    public mutating func markMapped(_ from: Int, _ to: Int) {
        guard from < to else { return }
        let first = from / blockSize
        let end = (to - 1) / blockSize + 1
        coverBlocks(end)
        for block in first..<end { unmapped[block] = false }
    }

    /// Whole blocks [first, end) surely have no extent any more.
    public mutating func markUnmapped(blocks first: Int, _ end: Int) {
        guard first < end else { return }
        coverBlocks(end)
        for block in first..<end { unmapped[block] = true }
    }

    /// What a clone or a dedupe does to block knowledge: the destination blocks map what the
    /// source blocks map.
    public mutating func copyBlockKnowledge(from source: FileModel, block sourceFirst: Int, to destinationFirst: Int, count: Int) {
        let known = (0..<count).map { source.isUnmapped(block: sourceFirst + $0) }
        coverBlocks(destinationFirst + count)
        for index in 0..<count { unmapped[destinationFirst + index] = known[index] }
    }

    private mutating func coverBlocks(_ count: Int) {
        if unmapped.count < count { unmapped.append(contentsOf: repeatElement(true, count: count - unmapped.count)) }
    }
}

/// A megabyte of zeros to grow files from: appending from contiguous memory is a memcpy even in
/// debug builds, where appending repeated elements goes byte by byte.
enum ZeroBytes {
    static let count = 1 << 20
    nonisolated(unsafe) static let buffer: UnsafeBufferPointer<UInt8> = {
        let memory = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count)
        memory.initialize(repeating: 0)
        return UnsafeBufferPointer(memory)
    }()
}
