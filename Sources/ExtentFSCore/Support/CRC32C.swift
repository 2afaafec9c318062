import CCRC32C

/// CRC-32C (Castagnoli), the checksum of every tree node, log record and superblock. In C
/// (Sources/CCRC32C) for the CPU's crc32 instruction: a node is checksummed on every read that
/// misses the cache, and a byte-at-a-time table took a fifth of the daemon's CPU in a cold stat
/// of random files (perf, 200,000 files).
package enum CRC32C {
    package static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return seed }
        return ~extentfs_crc32c_update(~seed, base, bytes.count)
    }

    package static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The table path alone (what a CPU without the instruction computes), for the tests.
    package static func portableChecksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { ~extentfs_crc32c_update_portable(~0, $0.baseAddress, $0.count) }
    }
}
