import ExtentFSCore
import ExtentFS

/// Where the metadata of an image lies, read from its bytes as docs/FORMAT.md describes them (not
/// through the engine's own decoders, which are what is under test): the superblock copies, each
/// one's checkpoint (version 4: the metadata tree's nodes, TreeLayout; versions 2 and 3: the
/// index and payload runs) and the log records after its tail. What the crafted mutations need
/// to change a value and recompute every checksum over it.
struct ImageLayout {
    /// A superblock field (docs/FORMAT.md, "Superblock"): bytes 56 to 95 are the checkpoint's
    /// root, whose fields depend on the version.
    struct Field: CustomStringConvertible {
        var name: String
        var offset: Int
        var width: Int

        static let version = Field(name: "version", offset: 8, width: 4)
        static let blockSize = Field(name: "blockSize", offset: 12, width: 4)
        static let blockCount = Field(name: "blockCount", offset: 16, width: 8)
        static let maxInodes = Field(name: "maxInodes", offset: 24, width: 8)
        static let sequence = Field(name: "sequence", offset: 48, width: 8)
        static let logFirstBlock = Field(name: "logFirstBlock", offset: 96, width: 8)
        static let logBlockCount = Field(name: "logBlockCount", offset: 104, width: 8)
        static let tailOffset = Field(name: "tailOffset", offset: 112, width: 8)
        static let tailSequence = Field(name: "tailSequence", offset: 120, width: 8)
        // Versions 2 and 3: a whole checkpoint.
        static let indexBlock = Field(name: "indexBlock", offset: 56, width: 8)
        static let indexBlockCount = Field(name: "indexBlockCount", offset: 64, width: 8)
        static let indexBytes = Field(name: "indexBytes", offset: 72, width: 8)
        static let indexChecksum = Field(name: "indexChecksum", offset: 80, width: 4)
        static let payloadBytes = Field(name: "payloadBytes", offset: 84, width: 8)
        static let payloadChecksum = Field(name: "payloadChecksum", offset: 92, width: 4)
        // Version 4: the metadata tree's root.
        static let rootAddress = Field(name: "rootAddress", offset: 56, width: 8)
        static let rootGeneration = Field(name: "rootGeneration", offset: 64, width: 8)
        static let rootLevel = Field(name: "rootLevel", offset: 72, width: 1)
        static let rootReserved = Field(name: "rootReserved", offset: 73, width: 8)
        // Version 6: the label's length and its first bytes (a NUL among a label's bytes is
        // damage; bytes past its end are not read).
        static let labelLength = Field(name: "labelLength", offset: 128, width: 1)
        static let labelBytes = Field(name: "labelBytes", offset: 129, width: 2)

        static let common = [version, blockSize, blockCount, maxInodes, sequence, logFirstBlock, logBlockCount, tailOffset, tailSequence]
        static let whole = [indexBlock, indexBlockCount, indexBytes, indexChecksum, payloadBytes, payloadChecksum]
        static let tree = [rootAddress, rootGeneration, rootLevel, rootReserved]

        /// The fields of a superblock of `version`, with the tree's (or the whole checkpoint's)
        /// listed twice: they are what the other fields lead to.
        static func all(version: UInt32) -> [Field] {
            let root = version >= ImageLayout.treeVersion ? tree : whole
            let label = version >= ImageLayout.labelVersion ? [labelLength, labelBytes] : []
            return common + root + root + label
        }

        var description: String { name }
    }

    static let treeVersion: UInt32 = 4
    static let labelVersion: UInt32 = 6
    /// Directory images end with their entry totals; the tree indexes entries by name hash.
    static let nameIndexVersion: UInt32 = 7
    static let slotOffsets = [0, 4096]
    static let superblockSize = 512
    static let logHeaderSize = 64

    struct Superblock {
        var slot: Int
        var offset: Int
        var sequence: UInt64
        var version: UInt32
        var blockSize: Int
        /// Image byte ranges holding the checkpoint payload, in payload order, and its length.
        var payloadPieces: [Range<Int>]
        var payloadBytes: Int
        var indexRange: Range<Int>?
        var records: [LogRecord]
        /// Version 4: the metadata tree (empty for older versions).
        var tree = TreeLayout()
    }

    struct LogRecord {
        /// Image offset of the 64-byte header; the payload follows it.
        var headerOffset: Int
        var payloadBytes: Int
        var sequence: UInt64
    }

    var superblocks: [Superblock] = []

    var newest: Superblock? { superblocks.max { $0.sequence < $1.sequence } }

    /// Every byte range that holds metadata: where damage means something.
    var metadataRanges: [Range<Int>] {
        var ranges = [0..<8192]
        for superblock in superblocks {
            ranges += superblock.payloadPieces
            ranges += superblock.tree.nodes.map(\.range)
            if let index = superblock.indexRange { ranges.append(index) }
            for record in superblock.records { ranges.append(record.headerOffset..<record.headerOffset + ImageLayout.logHeaderSize + record.payloadBytes) }
        }
        return ranges.filter { !$0.isEmpty }
    }

    init(_ image: [UInt8]) {
        for (slot, offset) in ImageLayout.slotOffsets.enumerated() where offset + ImageLayout.superblockSize <= image.count {
            guard Array(image[offset..<offset + 8]) == Array("EXTENTFS".utf8),
                  CRC32C.checksum(Array(image[offset..<offset + 508])) == ImageLayout.u32(image, offset + 508) else { continue }
            let field = { (field: Field) -> UInt64 in ImageLayout.read(image, offset + field.offset, field.width) }
            let blockSize = Int(field(.blockSize))
            guard blockSize >= 512, blockSize <= 65536 else { continue }
            let version = UInt32(truncatingIfNeeded: field(.version))
            var superblock = Superblock(slot: slot, offset: offset, sequence: field(.sequence), version: version, blockSize: blockSize,
                                        payloadPieces: [], payloadBytes: 0, indexRange: nil, records: [])
            if version >= ImageLayout.treeVersion {
                superblock.tree = TreeLayout(image, blockSize: blockSize, rootAddress: field(.rootAddress))
            } else {
                ImageLayout.locateCheckpoint(image, field, blockSize: blockSize, into: &superblock)
            }
            superblock.records = ImageLayout.records(image, field, blockSize: blockSize)
            superblocks.append(superblock)
        }
    }

    private static func locateCheckpoint(_ image: [UInt8], _ field: (Field) -> UInt64, blockSize: Int, into superblock: inout Superblock) {
        let (indexBlock, indexBytes) = (field(.indexBlock), field(.indexBytes))
        guard indexBlock < UInt64(image.count / blockSize), indexBytes >= 16, indexBytes < 1 << 20 else { return }
        let start = Int(indexBlock) * blockSize
        guard start + Int(indexBytes) <= image.count, Array(image[start..<start + 8]) == Array("EXINDX01".utf8) else { return }
        superblock.indexRange = start..<start + Int(indexBytes)
        let runCount = Int(min(read(image, start + 8, 8), (indexBytes - 16) / 16))
        var remaining = Int(min(field(.payloadBytes), UInt64(image.count)))
        superblock.payloadBytes = remaining
        for run in 0..<runCount where remaining > 0 {
            let first = read(image, start + 16 + 16 * run, 8)
            let count = read(image, start + 24 + 16 * run, 8)
            guard first < UInt64(image.count / blockSize), count <= UInt64(image.count / blockSize) else { return }
            let begin = Int(first) * blockSize
            let end = min(begin + Int(count) * blockSize, image.count, begin + remaining)
            guard begin < end else { return }
            superblock.payloadPieces.append(begin..<end)
            remaining -= end - begin
        }
    }

    /// The records replay would read from this superblock's tail: intact headers with the
    /// expected sequences (payload checksums are not required: a mutation may be the reason).
    private static func records(_ image: [UInt8], _ field: (Field) -> UInt64, blockSize: Int) -> [LogRecord] {
        let regionStart = Int(min(field(.logFirstBlock), UInt64(image.count))) * blockSize
        // Every value here may be hostile: nothing may overflow.
        let (logBytes, overflow) = field(.logBlockCount).multipliedReportingOverflow(by: UInt64(blockSize))
        let capacity = Int(min(overflow ? UInt64.max : logBytes, UInt64(image.count)))
        guard regionStart + capacity <= image.count, capacity > 0 else { return [] }
        var offset = Int(min(field(.tailOffset), UInt64(capacity)))
        var sequence = field(.tailSequence)
        var scanned = 0
        var records: [LogRecord] = []
        while scanned < capacity, offset + logHeaderSize <= capacity, records.count < 10_000 {
            let header = regionStart + offset
            guard Array(image[header..<header + 8]) == Array("EXLOGREC".utf8),
                  CRC32C.checksum(Array(image[header..<header + 60])) == u32(image, header + 60),
                  read(image, header + 8, 8) == sequence else { break }
            let kind = u32(image, header + 16)
            let length = Int(u32(image, header + 20))
            if kind == 2 {
                scanned += capacity - offset
                offset = 0
                continue
            }
            guard offset + logHeaderSize + length <= capacity else { break }
            records.append(LogRecord(headerOffset: header, payloadBytes: length, sequence: sequence))
            let size = (logHeaderSize + length + 511) / 512 * 512
            scanned += size
            offset += size
            if offset >= capacity { offset = 0 }
            sequence &+= 1
        }
        return records
    }

    // MARK: - Little-endian access

    static func read(_ bytes: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<width where offset + index < bytes.count { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        return value
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: read(bytes, offset, 4)) }

    static func write(_ value: UInt64, width: Int, into bytes: inout [UInt8], at offset: Int) {
        for index in 0..<width where offset + index < bytes.count { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    // MARK: - Checksums over a mutation

    /// The superblock's own checksum, after a change to any of its fields.
    static func sealSuperblock(_ image: inout [UInt8], at offset: Int) {
        write(UInt64(CRC32C.checksum(Array(image[offset..<offset + 508]))), width: 4, into: &image, at: offset + 508)
    }

    /// The checkpoint payload's checksum (and the superblock's), after a change to the payload.
    static func sealPayload(_ image: inout [UInt8], of superblock: Superblock) {
        var payload: [UInt8] = []
        for piece in superblock.payloadPieces { payload += image[piece] }
        write(UInt64(CRC32C.checksum(payload)), width: 4, into: &image, at: superblock.offset + Field.payloadChecksum.offset)
        sealSuperblock(&image, at: superblock.offset)
    }

    static func sealIndex(_ image: inout [UInt8], of superblock: Superblock) {
        guard let range = superblock.indexRange else { return }
        write(UInt64(CRC32C.checksum(Array(image[range]))), width: 4, into: &image, at: superblock.offset + Field.indexChecksum.offset)
        sealSuperblock(&image, at: superblock.offset)
    }

    /// A log record's payload checksum and header checksum, after a change to either.
    static func sealRecord(_ image: inout [UInt8], _ record: LogRecord) {
        let payload = record.headerOffset + logHeaderSize
        let length = Int(u32(image, record.headerOffset + 20))
        if payload + length <= image.count {
            write(UInt64(CRC32C.checksum(Array(image[payload..<payload + length]))), width: 4, into: &image, at: record.headerOffset + 24)
        }
        write(UInt64(CRC32C.checksum(Array(image[record.headerOffset..<record.headerOffset + 60]))), width: 4,
              into: &image, at: record.headerOffset + 60)
    }
}
