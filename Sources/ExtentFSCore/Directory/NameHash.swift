/// The hash that keys a directory's name index in the metadata tree (format version 7,
/// docs/FORMAT.md): SipHash-2-4 of the name, keyed with the volume's UUID. A keyed hash, as
/// ext4's htree uses a per-volume seed: a user who cannot read the image cannot choose names
/// that collide, so the names under one hash stay few (a tree value holds up to
/// `maxValueSize / 18` short records; more would fail the checkpoint: docs/FORMAT.md).
package struct NameHash: Sendable {
    private let key0: UInt64
    private let key1: UInt64

    package init(uuid: [UInt8]) {
        var k0: UInt64 = 0, k1: UInt64 = 0
        for index in 0..<8 {
            k0 |= UInt64(index < uuid.count ? uuid[index] : 0) << (8 * UInt64(index))
            k1 |= UInt64(index + 8 < uuid.count ? uuid[index + 8] : 0) << (8 * UInt64(index))
        }
        key0 = k0
        key1 = k1
    }

    package func callAsFunction(_ name: [UInt8]) -> UInt64 {
        var v0: UInt64 = 0x736f6d6570736575 ^ key0
        var v1: UInt64 = 0x646f72616e646f6d ^ key1
        var v2: UInt64 = 0x6c7967656e657261 ^ key0
        var v3: UInt64 = 0x7465646279746573 ^ key1
        @inline(__always) func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }
        @inline(__always) func compress(_ word: UInt64) {
            v3 ^= word
            round(); round()
            v0 ^= word
        }
        let whole = name.count & ~7
        var index = 0
        while index < whole {
            var word: UInt64 = 0
            for byte in 0..<8 { word |= UInt64(name[index + byte]) << (8 * UInt64(byte)) }
            compress(word)
            index += 8
        }
        var last = UInt64(truncatingIfNeeded: name.count) << 56
        for byte in 0..<(name.count - whole) { last |= UInt64(name[whole + byte]) << (8 * UInt64(byte)) }
        compress(last)
        v2 ^= 0xff
        round(); round(); round(); round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}

private extension UInt64 {
    @inline(__always) func rotatedLeft(_ count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
