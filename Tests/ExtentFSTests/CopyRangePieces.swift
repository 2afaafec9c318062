/// The pieces a copy_file_range reaches the disk in, in order, each of which can be durable
/// without the ones after it, so that a crash may show the destination after any prefix of
/// them: when both offsets sit at the same place within a block, the unaligned head is copied
/// (a write through the page cache), the whole blocks after it are cloned (one transaction,
/// which logs the destination's size at the end of the last cloned block) and the tail is
/// copied; otherwise it is one copy (FileSystem.copyFileRange).
///
/// That is not atomic, and need not be: XFS's copy_file_range is no more so. It clones whole
/// blocks (remap_file_range with REMAP_FILE_CAN_SHORTEN), one transaction per extent, each raising
/// the on-disk size to the end of that extent, and copies the rest through the page cache, whose
/// size reaches the disk as writeback completes; an un-fsynced copy_file_range may be found cut
/// at a block boundary, with the size there. Every piece ends with data it wrote under its size.
enum CopyRangePieces {
    /// Ranges relative to the start of the copy, covering [0, length) in order, none empty.
    static func split(sourceOffset: Int, destinationOffset: Int, length: Int, blockSize: Int) -> [Range<Int>] {
        guard length > 0 else { return [] }
        guard sourceOffset % blockSize == destinationOffset % blockSize else { return [0..<length] }
        let head = min(length, (blockSize - sourceOffset % blockSize) % blockSize)
        let whole = (length - head) / blockSize * blockSize
        return [0..<head, head..<head + whole, head + whole..<length].filter { !$0.isEmpty }
    }
}
