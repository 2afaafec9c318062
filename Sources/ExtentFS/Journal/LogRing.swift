import ExtentFSCore
import SystemPackage

/// The log region used as a ring of 512-byte sectors. Each record is a 64-byte header and its
/// payload, padded to whole sectors, written with one write:
///
///     "EXLOGREC", u64 sequence, u32 kind, u32 payload bytes, u32 payload CRC-32C, 16-byte volume
///     UUID, zeros to byte 60, u32 CRC-32C of bytes 0..<60
///
/// A record never spans the end of the region: when it would, a wrap record (header only, same
/// sequence) says "continue at offset 0". Replay reads from a superblock's tail while each
/// header is intact, carries the expected sequence and the volume's UUID, and its payload's
/// checksum matches; the first that does not is the end of the log (a torn or never-written
/// record, or one from an earlier lap, whose sequence is lower).
///
/// Records are written one commit at a time, each followed by a flush before the next is
/// written (Journal.commitLock), so a record on disk implies every earlier one is.
///
/// Space: bytes from `reclaimTail` (the oldest record a superblock copy still replays from) to
/// `head` are in use; an append must leave at least one sector free so head never meets tail.
/// `head` moves under Journal.commitLock and `positionLock` (a leaf), so that a checkpoint, which
/// does not hold commitLock, can read how much is in use; the tail moves under `positionLock`.
final class LogRing: @unchecked Sendable {
    static let headerSize = 64
    static let magic: [UInt8] = Array("EXLOGREC".utf8)
    enum Kind: UInt32 {
        case transaction = 1
        case wrap = 2
    }

    let store: BackingStore
    /// Byte offset of the region in the image.
    let regionOffset: UInt64
    let capacity: UInt64
    let uuid: [UInt8]
    var head: LogPosition { positionLock.withLock { storedHead } }
    private var storedHead: LogPosition
    private let positionLock = Mutex()
    private var _reclaimTail: UInt64
    var reclaimTail: UInt64 { positionLock.withLock { _reclaimTail } }

    init(store: BackingStore, superblock: Superblock, head: LogPosition, reclaimTail: UInt64) {
        self.store = store
        regionOffset = superblock.log.firstBlock * UInt64(superblock.blockSize)
        capacity = superblock.log.bytes(blockSize: Int(superblock.blockSize))
        uuid = superblock.uuid
        storedHead = head
        _reclaimTail = reclaimTail
    }

    var usedBytes: UInt64 {
        let (head, tail) = positionLock.withLock { (storedHead, _reclaimTail) }
        return head.offset >= tail ? head.offset - tail : capacity - tail + head.offset
    }

    static func paddedSize(payloadBytes: Int) -> UInt64 {
        let sector = UInt64(LogRegion.sectorSize)
        return (UInt64(headerSize + payloadBytes) + sector - 1) / sector * sector
    }

    /// Room for a record of `payloadBytes`, counting the end of the region it would skip.
    func fits(payloadBytes: Int) -> Bool {
        let size = LogRing.paddedSize(payloadBytes: payloadBytes)
        let offset = head.offset
        let skipped = size > capacity - offset ? capacity - offset : 0
        return usedBytes + skipped + size < capacity
    }

    /// Writes the record (not flushed). The caller checked `fits`.
    func append(_ payload: [UInt8]) throws {
        let size = LogRing.paddedSize(payloadBytes: payload.count)
        // Only commitLock's holder changes the head: this copy stays current until it is stored.
        var head = storedHead
        defer { positionLock.withLock { storedHead = head } }
        if size > capacity - head.offset {
            try store.write(LogRing.header(kind: .wrap, sequence: head.sequence, payload: [], uuid: uuid) +
                            [UInt8](repeating: 0, count: LogRegion.sectorSize - LogRing.headerSize),
                            at: regionOffset + head.offset)
            head.offset = 0
        }
        var record = LogRing.header(kind: .transaction, sequence: head.sequence, payload: payload, uuid: uuid)
        record.reserveCapacity(Int(size))
        record += payload
        record += [UInt8](repeating: 0, count: Int(size) - record.count)
        try store.write(record, at: regionOffset + head.offset)
        head.offset += size
        if head.offset == capacity { head.offset = 0 }
        head.sequence += 1
    }

    /// A transaction recorded by checkpoints instead of a record: the next record follows it.
    func skip(to sequence: LogSequence) {
        positionLock.withLock { storedHead.sequence = sequence }
    }

    /// The oldest record any superblock copy replays from moved on: the space before it is free.
    func reclaim(upTo offset: UInt64) {
        positionLock.withLock { _reclaimTail = offset }
    }

    static func header(kind: Kind, sequence: LogSequence, payload: [UInt8], uuid: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: headerSize)
        writer.raw(magic)
        writer.u64(sequence)
        writer.u32(kind.rawValue)
        writer.u32(UInt32(payload.count))
        writer.u32(CRC32C.checksum(payload))
        writer.raw(uuid)
        writer.pad(to: headerSize - 4)
        writer.u32(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    /// Reads records from `start` until the first that is not intact, handing each payload to
    /// `apply` in order. Returns where the next record goes. Never reads outside the region and
    /// never goes round more than once.
    static func replay(_ store: BackingStore, superblock: Superblock, from start: LogPosition,
                       apply: ([UInt8]) throws -> Void) throws -> LogPosition {
        let regionOffset = superblock.log.firstBlock * UInt64(superblock.blockSize)
        let capacity = superblock.log.bytes(blockSize: Int(superblock.blockSize))
        var position = start
        var scanned: UInt64 = 0
        while scanned < capacity {
            let header = try store.read(headerSize, at: regionOffset + position.offset)
            var reader = ByteReader(header)
            var checksumReader = ByteReader(header, offset: headerSize - 4)
            guard Array(header[0..<8]) == magic,
                  CRC32C.checksum(Array(header[0..<headerSize - 4])) == (try checksumReader.u32()),
                  Array(header[28..<44]) == superblock.uuid else { break }
            _ = try reader.raw(8)
            let sequence = try reader.u64()
            let rawKind = try reader.u32()
            let length = try reader.u32()
            let checksum = try reader.u32()
            guard sequence == position.sequence, sequence < LogPosition.maxSequence, let kind = Kind(rawValue: rawKind) else { break }
            if kind == .wrap {
                scanned += capacity - position.offset
                position.offset = 0
                continue
            }
            guard UInt64(headerSize) + UInt64(length) <= capacity - position.offset else { break }
            let payload = try store.read(Int(length), at: regionOffset + position.offset + UInt64(headerSize))
            guard CRC32C.checksum(payload) == checksum else { break }
            try apply(payload)
            let size = paddedSize(payloadBytes: Int(length))
            scanned += size
            position.offset += size
            if position.offset == capacity { position.offset = 0 }
            position.sequence += 1
        }
        return position
    }
}
