/// The superblock: 512 bytes, kept twice (at byte 0 and byte 4096) and written alternately, so a
/// torn superblock write leaves the other copy valid. Mount uses the valid copy with the highest
/// sequence. Layout in docs/FORMAT.md.
public struct Superblock: Equatable {
    public static let magic: [UInt8] = Array("EXTENTFS".utf8)
    /// 3: log records may carry a directory's entry changes instead of its entries (LogRecord).
    /// 4: the checkpoint is a copy-on-write B+tree (MetadataTree/MetadataTree.swift), written
    /// incrementally, instead of one whole payload.
    /// 5: the tree also lists the blocks files use, the inode count and the orphans, and log
    /// records carry their changes, so that mount reads neither every inode nor every extent.
    /// 6: inode images carry the birth time and chattr flags (InodeImageLayout), log records
    /// kinds of change that carry them; the superblock holds a label.
    /// 7: a directory's image gives its entry count and bytes, and the tree indexes entries by a
    /// hash of their names, so that a directory is read without its entries and a lookup reads
    /// one entry (MetadataTree+Entries.swift); log records kinds of change that carry them.
    /// 8: log records may carry a file's extent changes instead of its map (LogRecord, kind 8).
    /// 9: the name index holds each entry's inode number, type and name, not only its cookie,
    /// so that a lookup by name reads one item (MetadataTree+Entries.swift).
    /// 10: the tree holds free space by position and by size (MetadataTree+FreeSpace.swift).
    /// Versions 2 to 9 mount as they are and become version 10 at their first checkpoint, which a
    /// read-write mount writes at once (FileSystem.mount).
    public static let currentVersion: UInt32 = 10
    /// The first version whose tree holds free space.
    package static let freeSpaceVersion: UInt32 = 10
    /// The first version whose checkpoint is the metadata tree.
    package static let treeVersion: UInt32 = 4
    /// The first version with a label.
    package static let labelVersion: UInt32 = 6
    /// The oldest version this extentfs mounts (1 had no log).
    public static let oldestMountableVersion: UInt32 = 2
    public static let encodedSize = 512
    public static let slotOffsets: [UInt64] = [0, 4096]
    /// Bytes before the first allocatable block: both superblock slots.
    public static let reservedBytes: UInt64 = 8192
    /// The largest file: 2^50 bytes (1 PiB) at every block size.
    public static let maxFileSize: UInt64 = 1 << 50
    /// The root directory's inode number (FileSystem.rootInode).
    package static let rootInode: InodeNumber = 1
    /// The longest name of a directory entry, in bytes (NAME_MAX; FileSystem.maxNameLength).
    package static let maxNameLength = 255

    public var version: UInt32 = currentVersion
    public var blockSize: UInt32
    public var blockCount: UInt64
    public var maxInodes: UInt64
    public var uuid: [UInt8]
    /// Increments with every commit; the checkpoint below is the state at that commit.
    public var sequence: UInt64
    public var checkpoint: CheckpointLocation
    /// The log region: a fixed run of blocks after the superblock area, set at mkfs.
    public var log: LogRegion = LogRegion(firstBlock: 0, blockCount: 0)
    /// Where replay starts: the first record after this checkpoint.
    public var logTail: LogPosition = LogPosition(offset: 0, sequence: 1)
    /// The filesystem label (mkfs -L, FS_IOC_SETFSLABEL): up to `maxLabelBytes` bytes, no NUL
    /// (FS_IOC_GETFSLABEL hands it out NUL-terminated); empty when there is none.
    public var label: [UInt8] = []

    package init(version: UInt32 = currentVersion, blockSize: UInt32, blockCount: UInt64, maxInodes: UInt64, uuid: [UInt8],
                 sequence: UInt64, checkpoint: CheckpointLocation, log: LogRegion = LogRegion(firstBlock: 0, blockCount: 0),
                 logTail: LogPosition = LogPosition(offset: 0, sequence: 1), label: [UInt8] = []) {
        self.version = version
        self.blockSize = blockSize
        self.blockCount = blockCount
        self.maxInodes = maxInodes
        self.uuid = uuid
        self.sequence = sequence
        self.checkpoint = checkpoint
        self.log = log
        self.logTail = logTail
        self.label = label
    }

    /// The longest label: what FS_IOC_GETFSLABEL's buffer (FSLABEL_MAX, 256) holds with its
    /// NUL. XFS keeps 12 bytes and ext4 16; btrfs, like extentfs, 255.
    public static let maxLabelBytes = 255
    package static let labelOffset = 128

    /// Whether `label` may be stored: not too long, no NUL.
    public static func isValidLabel(_ label: [UInt8]) -> Bool {
        label.count <= maxLabelBytes && !label.contains(0)
    }

    /// Block counts above this could overflow byte offsets (2^63 bytes at 64 KiB blocks).
    package static let maxBlockCount: UInt64 = 1 << 47

    /// The first block the allocator may hand out: after the superblock area and the log.
    package var firstAllocatableBlock: UInt64 { log.firstBlock + log.blockCount }

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
        writer.pad(to: 56 + CheckpointLocation.encodedSize)
        writer.u64(log.firstBlock)
        writer.u64(log.blockCount)
        writer.u64(logTail.offset)
        writer.u64(logTail.sequence)
        writer.pad(to: Superblock.labelOffset)
        if version >= Superblock.labelVersion {
            // Never longer: every way in checks (isValidLabel); a longer one would overrun the CRC.
            let stored = label.prefix(Superblock.maxLabelBytes)
            writer.u8(UInt8(stored.count))
            writer.raw(Array(stored))
        }
        writer.pad(to: Superblock.encodedSize - 4)
        writer.u32(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    package enum DecodeResult {
        case valid(Superblock)
        case notExtentFS
        case newerVersion(UInt32)
        case olderVersion(UInt32)
        case damaged(String)
    }

    package static func decode(_ bytes: [UInt8]) -> DecodeResult {
        guard bytes.count >= encodedSize, Array(bytes[0..<8]) == magic else { return .notExtentFS }
        var reader = ByteReader(bytes, offset: 8)
        do {
            let version = try reader.u32()
            if version > currentVersion { return .newerVersion(version) }
            if version < oldestMountableVersion { return .olderVersion(version) }
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
            let checkpoint = try CheckpointLocation.decode(&reader, version: version)
            let log = LogRegion(firstBlock: try reader.u64(), blockCount: try reader.u64())
            let tail = LogPosition(offset: try reader.u64(), sequence: try reader.u64())
            var label: [UInt8] = []
            if version >= labelVersion {
                let length = Int(bytes[labelOffset])
                label = Array(bytes[(labelOffset + 1)..<(labelOffset + 1 + length)])
                guard !label.contains(0) else { return .damaged("superblock label holds a NUL byte") }
            }
            let superblock = Superblock(version: version, blockSize: blockSize, blockCount: blockCount, maxInodes: maxInodes,
                                        uuid: uuid, sequence: sequence, checkpoint: checkpoint, log: log, logTail: tail,
                                        label: label)
            guard blockCount > superblock.firstDataBlock else { return .damaged("superblock block count \(blockCount) is too small") }
            guard blockCount <= Superblock.maxBlockCount else { return .damaged("superblock block count \(blockCount) is too large") }
            guard log.firstBlock == superblock.firstDataBlock, log.blockCount > 0, log.blockCount <= blockCount - log.firstBlock,
                  log.bytes(blockSize: Int(blockSize)) <= LogRegion.maxBytes,
                  tail.offset < log.bytes(blockSize: Int(blockSize)), tail.offset % UInt64(LogRegion.sectorSize) == 0,
                  tail.sequence >= 1, tail.sequence < LogPosition.maxSequence, sequence < LogPosition.maxSequence else {
                return .damaged("superblock log region or tail is out of range")
            }
            return .valid(superblock)
        } catch {
            return .damaged("superblock is truncated")
        }
    }
}

/// Where a commit's checkpoint of the metadata lives, in the form of the superblock's version.
/// Either form takes the same 40 bytes of the superblock.
public enum CheckpointLocation: Equatable {
    /// Versions 2 and 3: the whole metadata as one payload, found through an index.
    case whole(CheckpointRoot)
    /// Version 4 on: the metadata tree's root; nil while the tree is empty.
    case tree(TreeRoot?)

    package static let encodedSize = 40

    package func encode(into writer: inout ByteWriter) {
        switch self {
        case .whole(let root):
            root.encode(into: &writer)
        case .tree(let root):
            // Address 0 is the superblock: never a node, so it stands for the empty tree.
            writer.u64(root?.address ?? 0)
            writer.u64(root?.generation ?? 0)
            writer.u8(root?.level ?? 0)
        }
    }

    package static func decode(_ reader: inout ByteReader, version: UInt32) throws -> CheckpointLocation {
        guard version >= Superblock.treeVersion else { return .whole(try CheckpointRoot.decode(&reader)) }
        let address = try reader.u64()
        let generation = try reader.u64()
        let level = try reader.u8()
        _ = try reader.raw(encodedSize - 17)
        return .tree(address == 0 ? nil : TreeRoot(address: address, generation: generation, level: level))
    }

    package var treeRoot: TreeRoot? {
        if case .tree(let root) = self { return root }
        return nil
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

    package init(indexBlock: UInt64, indexBlockCount: UInt64, indexBytes: UInt64, indexChecksum: UInt32, payloadBytes: UInt64,
                 payloadChecksum: UInt32) {
        self.indexBlock = indexBlock
        self.indexBlockCount = indexBlockCount
        self.indexBytes = indexBytes
        self.indexChecksum = indexChecksum
        self.payloadBytes = payloadBytes
        self.payloadChecksum = payloadChecksum
    }

    package func encode(into writer: inout ByteWriter) {
        writer.u64(indexBlock)
        writer.u64(indexBlockCount)
        writer.u64(indexBytes)
        writer.u32(indexChecksum)
        writer.u64(payloadBytes)
        writer.u32(payloadChecksum)
    }

    package static func decode(_ reader: inout ByteReader) throws -> CheckpointRoot {
        CheckpointRoot(indexBlock: try reader.u64(), indexBlockCount: try reader.u64(), indexBytes: try reader.u64(),
                       indexChecksum: try reader.u32(), payloadBytes: try reader.u64(), payloadChecksum: try reader.u32())
    }
}

/// The log's fixed place in the image: whole blocks, used as a ring of 512-byte sectors.
public struct LogRegion: Equatable, Sendable {
    package static let sectorSize = 512
    package static let maxBytes: UInt64 = 1 << 30

    public var firstBlock: UInt64
    public var blockCount: UInt64

    package init(firstBlock: UInt64, blockCount: UInt64) {
        self.firstBlock = firstBlock
        self.blockCount = blockCount
    }

    package func bytes(blockSize: Int) -> UInt64 { blockCount * UInt64(blockSize) }

    /// The size mkfs gives the log: 1/64 of the volume, from 256 KiB to 64 MiB, whole blocks.
    package static func blocks(forVolumeBytes bytes: UInt64, blockSize: Int) -> UInt64 {
        let wanted = min(max(bytes / 64, 256 << 10), 64 << 20)
        return max(2, (wanted + UInt64(blockSize) - 1) / UInt64(blockSize))
    }
}

/// Log sequence numbers: transaction `n` is logged as the record with sequence `n`.
package typealias LogSequence = UInt64

/// A place in the log: a byte offset in the region and the sequence of the record there.
public struct LogPosition: Equatable, Sendable {
    public var offset: UInt64
    public var sequence: UInt64

    /// The highest sequence a record or superblock may hold: far beyond any real volume's life,
    /// and far from overflow.
    package static let maxSequence: LogSequence = 1 << 62

    package init(offset: UInt64, sequence: UInt64) {
        self.offset = offset
        self.sequence = sequence
    }
}
