/// Deterministic pseudo-random file contents: the same seed always gives the same bytes, so a
/// test can regenerate what it wrote instead of keeping it.
enum TestContent {
    static func bytes(seed: UInt64, count: Int) -> [UInt8] {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        var result = [UInt8](repeating: 0, count: count)
        result.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < count {
                // SplitMix64.
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                if offset + 8 <= count {
                    buffer.storeBytes(of: z.littleEndian, toByteOffset: offset, as: UInt64.self)
                    offset += 8
                } else {
                    while offset < count {
                        buffer[offset] = UInt8(truncatingIfNeeded: z)
                        z >>= 8
                        offset += 1
                    }
                }
            }
        }
        return result
    }
}

/// A 64-bit digest for recording file contents in snapshots (FNV-1a over 8-byte words). Tests
/// that need certainty compare bytes; the digest only has to notice that something changed.
struct ContentDigest: Equatable, CustomStringConvertible {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    private(set) var length: Int = 0

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset + 8 <= buffer.count {
                mix(buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            while offset < buffer.count {
                mix(UInt64(buffer[offset]))
                offset += 1
            }
        }
        length += bytes.count
    }

    private mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01B3
        value ^= value >> 29
    }

    var description: String { "\(length) bytes, digest \(String(value, radix: 16))" }
}
