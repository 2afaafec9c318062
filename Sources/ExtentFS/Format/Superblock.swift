/// The superblock: 512 bytes, kept twice (at byte 0 and byte 4096) and written alternately, so a
/// torn superblock write leaves the other copy valid. Mount uses the valid copy with the highest
/// sequence. Layout in docs/FORMAT.md.
public struct Superblock: Equatable {
    public static let magic: [UInt8] = Array("EXTENTFS".utf8)
    public static let currentVersion: UInt32 = 1
    public static let encodedSize = 512
    public static let slotOffsets: [UInt64] = [0, 4096]
    /// Bytes before the first allocatable block: both superblock slots.
    public static let reservedBytes: UInt64 = 8192
    /// The largest file: 2^50 bytes (1 PiB) at every block size.
    public static let maxFileSize: UInt64 = 1 << 50

    public var version: UInt32 = currentVersion
    public var blockSize: UInt32
    public var blockCount: UInt64
    public var maxInodes: UInt64
    public var uuid: [UInt8]
    /// Increments with every commit; the checkpoint below is the state at that commit.
    public var sequence: UInt64
    public var checkpoint: CheckpointRoot

    public var firstDataBlock: UInt64 {
        (Superblock.reservedBytes + UInt64(blockSize) - 1) / UInt64(blockSize)
    }

    public func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: Superblock.encodedSize)
        writer.raw(Superblock.magic)
        writer.u32(version)
        writer.u32(blockSize)
        writer.u64(blockCount)
        writer.u64(maxInodes)
        writer.raw(uuid)
        writer.u64(sequence)
        checkpoint.encode(into: &writer)
        writer.pad(to: Superblock.encodedSize - 4)
        writer.u32(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    enum DecodeResult {
        case valid(Superblock)
        case notExtentFS
        case newerVersion(UInt32)
        case damaged(String)
    }

    static func decode(_ bytes: [UInt8]) -> DecodeResult {
        guard bytes.count >= encodedSize, Array(bytes[0..<8]) == magic else { return .notExtentFS }
        var reader = ByteReader(bytes, offset: 8)
        do {
            let version = try reader.u32()
            if version > currentVersion { return .newerVersion(version) }
            let stored = UInt32(bytes[508]) | UInt32(bytes[509]) << 8 | UInt32(bytes[510]) << 16 | UInt32(bytes[511]) << 24
            guard CRC32C.checksum(Array(bytes[0..<508])) == stored else { return .damaged("superblock checksum mismatch") }
            let blockSize = try reader.u32()
            guard blockSize >= 512, blockSize <= 65536, blockSize & (blockSize - 1) == 0 else {
                return .damaged("superblock block size \(blockSize) is invalid")
            }
            let blockCount = try reader.u64()
            let maxInodes = try reader.u64()
            let uuid = try reader.raw(16)
            let sequence = try reader.u64()
            let checkpoint = try CheckpointRoot.decode(&reader)
            let superblock = Superblock(version: version, blockSize: blockSize, blockCount: blockCount, maxInodes: maxInodes,
                                        uuid: uuid, sequence: sequence, checkpoint: checkpoint)
            guard blockCount > superblock.firstDataBlock else { return .damaged("superblock block count \(blockCount) is too small") }
            return .valid(superblock)
        } catch {
            return .damaged("superblock is truncated")
        }
    }
}

/// Where the metadata checkpoint of a commit lives: an index (one contiguous run of blocks
/// listing the payload's extents) and the payload's length and checksum.
public struct CheckpointRoot: Equatable {
    public var indexBlock: UInt64
    public var indexBlockCount: UInt64
    public var indexBytes: UInt64
    public var indexChecksum: UInt32
    public var payloadBytes: UInt64
    public var payloadChecksum: UInt32

    func encode(into writer: inout ByteWriter) {
        writer.u64(indexBlock)
        writer.u64(indexBlockCount)
        writer.u64(indexBytes)
        writer.u32(indexChecksum)
        writer.u64(payloadBytes)
        writer.u32(payloadChecksum)
    }

    static func decode(_ reader: inout ByteReader) throws -> CheckpointRoot {
        CheckpointRoot(indexBlock: try reader.u64(), indexBlockCount: try reader.u64(), indexBytes: try reader.u64(),
                       indexChecksum: try reader.u32(), payloadBytes: try reader.u64(), payloadChecksum: try reader.u32())
    }
}
