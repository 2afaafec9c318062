/// Hands arbitrary bytes to the decoders of everything mount reads from an image, and what they
/// decode to the checks and structures mount builds from it, as mount would: for the
/// coverage-guided fuzzer (Tests/DecoderFuzzer, scripts/fuzz.sh) and the replay of its
/// regression corpus (Tests/FuzzCorpus/decoders). A value read from an image must never trap,
/// hang or allocate without bound: any decoder may refuse, nothing may crash.
///
/// Input: byte 0 picks the structure, byte 1 the block size (512 << (byte % 8)), the rest is the
/// structure's bytes. Checksums are the first thing each reader checks, and a fuzzer cannot
/// forge them: the superblock's is recomputed here, and log record and checkpoint payloads are
/// decoded as they come after their checksums have matched.
enum DecoderFuzzing {
    enum Structure: UInt8, CaseIterable {
        case superblock = 0
        case logRecord = 1
        case checkpointPayload = 2
        case checkpointIndex = 3
    }

    /// The selector and block-size bytes that make `body` an input for `structure`.
    static func input(_ structure: Structure, blockSize: Int, body: [UInt8]) -> [UInt8] {
        [structure.rawValue, UInt8(blockSize.trailingZeroBitCount - 9)] + body
    }

    static func run(_ input: [UInt8]) {
        guard input.count >= 2, let structure = Structure(rawValue: input[0] % UInt8(Structure.allCases.count)) else { return }
        let body = Array(input.dropFirst(2))
        let superblock = sampleSuperblock(blockSize: 512 << Int(input[1] % 8))
        switch structure {
        case .superblock: decodeSuperblock(body)
        case .logRecord: replayLogRecord(body, superblock: superblock)
        case .checkpointPayload: loadCheckpoint(body, superblock: superblock)
        case .checkpointIndex:
            // And the payload's capacity, as mount works it out from the runs.
            if let runs = try? CheckpointIndex.decode(body, superblock: superblock) {
                _ = runs.reduce(UInt64(0)) { $0 + $1.count } * UInt64(superblock.blockSize)
            }
        }
    }

    /// A volume of 16 MiB as mkfs makes it (its log 256 KiB, after the superblocks), so that what
    /// the image fuzzer's small images hold (Tests/ImageFuzzer, `decoder-seeds`) lies inside it.
    static func sampleSuperblock(blockSize: Int) -> Superblock {
        let bytes: UInt64 = 16 << 20
        var superblock = Superblock(blockSize: UInt32(blockSize), blockCount: bytes / UInt64(blockSize), maxInodes: 2048,
                                    uuid: [UInt8](repeating: 0x5A, count: 16), sequence: 7,
                                    checkpoint: CheckpointRoot(indexBlock: 0, indexBlockCount: 0, indexBytes: 0,
                                                               indexChecksum: 0, payloadBytes: 0, payloadChecksum: 0))
        superblock.log = LogRegion(firstBlock: superblock.firstDataBlock, blockCount: LogRegion.blocks(forVolumeBytes: bytes, blockSize: blockSize))
        return superblock
    }

    /// The superblock as read, with its checksum made to match (so that every field is reached),
    /// and what mount derives from a valid one.
    private static func decodeSuperblock(_ body: [UInt8]) {
        var bytes = Array(body.prefix(Superblock.encodedSize))
        if bytes.count < Superblock.encodedSize { bytes += [UInt8](repeating: 0, count: Superblock.encodedSize - bytes.count) }
        let checksum = CRC32C.checksum(Array(bytes[0..<Superblock.encodedSize - 4]))
        withUnsafeBytes(of: checksum.littleEndian) { bytes.replaceSubrange(Superblock.encodedSize - 4..<Superblock.encodedSize, with: $0) }
        guard case .valid(let superblock) = Superblock.decode(bytes) else { return }
        // What mount computes from it before reading anything else.
        let geometry = Geometry(superblock: superblock)
        _ = (geometry.maxFileBlocks, superblock.firstAllocatableBlock, superblock.log.bytes(blockSize: geometry.blockSize))
        _ = superblock.blockCount * UInt64(superblock.blockSize)
        guard case .valid(let again) = Superblock.decode(superblock.encode()), again == superblock else {
            preconditionFailure("a valid superblock does not survive encoding and decoding")
        }
    }

    /// A record replayed over a volume holding only its root, then checked and loaded as mount
    /// would.
    private static func replayLogRecord(_ payload: [UInt8], superblock: Superblock) {
        let root = Inode(ino: FileSystem.rootInode, mode: FileType.directory.rawValue | 0o755, uid: 0, gid: 0,
                         time: Timespec(seconds: 0, nanoseconds: 0), cache: nil)
        root.parent = FileSystem.rootInode
        var state = ReplayState(nextInode: 2, inodes: [FileSystem.rootInode: root], referenceCounts: ReferenceCounts())
        guard (try? LogRecord.apply(payload, to: &state, superblock: superblock, cache: nil)) != nil else { return }
        load(LoadedCheckpoint(nextInode: state.nextInode, inodes: Array(state.inodes.values), referenceCounts: state.referenceCounts),
             superblock: superblock)
    }

    private static func loadCheckpoint(_ payload: [UInt8], superblock: Superblock) {
        guard let (nextInode, inodes, referenceCounts) = try? CheckpointCodec.decode(payload, superblock: superblock, cache: nil) else { return }
        load(LoadedCheckpoint(nextInode: nextInode, inodes: inodes, referenceCounts: referenceCounts), superblock: superblock)
    }

    /// Mount's steps after decoding: the checker; then, if it finds nothing, the in-memory
    /// metadata (free space from the extents, the running size count) and a checkpoint of it,
    /// which must decode to the same metadata.
    private static func load(_ loaded: LoadedCheckpoint, superblock: Superblock) {
        guard Checker.check(superblock: superblock, loaded: loaded).allSatisfy(\.isOrphan) else { return }
        let metadata = Metadata(superblock: superblock, loaded: loaded)
        let encoded = metadata.withLock { () -> [UInt8] in
            let snapshot = CheckpointCodec.snapshot(metadata)
            return CheckpointCodec.encode(nextInode: snapshot.nextInode, inodes: snapshot.inodes, referenceCounts: snapshot.referenceCounts)
        }
        guard let (_, inodes, _) = try? CheckpointCodec.decode(encoded, superblock: superblock, cache: nil),
              inodes.count == loaded.inodes.count else {
            preconditionFailure("metadata that passed the checker does not survive a checkpoint")
        }
        _ = metadata.withLock { (metadata.freeSpace.available, metadata.space.reserveBlocks(promisedDataBlocks: 0)) }
    }
}
