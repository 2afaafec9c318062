/// Little-endian encoding of the on-disk structures. Decoding is bounds-checked and throws on
/// anything short or absurd, so a damaged image gives an error, never a crash.
package struct ByteWriter {
    package var bytes: [UInt8] = []

    package init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    package mutating func u8(_ value: UInt8) { bytes.append(value) }
    package mutating func u16(_ value: UInt16) { append(value.littleEndian) }
    package mutating func u32(_ value: UInt32) { append(value.littleEndian) }
    package mutating func u64(_ value: UInt64) { append(value.littleEndian) }
    package mutating func i64(_ value: Int64) { append(value.littleEndian) }
    package mutating func raw(_ data: [UInt8]) { bytes.append(contentsOf: data) }
    /// A length-prefixed byte string.
    package mutating func blob16(_ data: [UInt8]) {
        u16(UInt16(data.count))
        bytes.append(contentsOf: data)
    }
    package mutating func blob32(_ data: [UInt8]) {
        u32(UInt32(data.count))
        bytes.append(contentsOf: data)
    }
    package mutating func pad(to count: Int) {
        if bytes.count < count { bytes.append(contentsOf: repeatElement(0, count: count - bytes.count)) }
    }

    private mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }
}

package struct DecodingError: Error, CustomStringConvertible {
    package var description: String

    package init(description: String) { self.description = description }
}

package struct ByteReader {
    package let bytes: [UInt8]
    package private(set) var offset: Int

    package init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    package var remaining: Int { bytes.count - offset }

    package mutating func u8() throws -> UInt8 { try integer() }
    package mutating func u16() throws -> UInt16 { try integer() }
    package mutating func u32() throws -> UInt32 { try integer() }
    package mutating func u64() throws -> UInt64 { try integer() }
    package mutating func i64() throws -> Int64 { try integer() }

    package mutating func raw(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else { throw DecodingError(description: "truncated record") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
    package mutating func blob16() throws -> [UInt8] { try raw(Int(try u16())) }
    package mutating func blob32() throws -> [UInt8] { try raw(Int(try u32())) }

    /// A count that must fit in what is left, each item taking at least `minimumItemSize` bytes.
    package mutating func count(minimumItemSize: Int) throws -> Int {
        let value = try u64()
        guard value <= UInt64(remaining / max(1, minimumItemSize)) else {
            throw DecodingError(description: "record count \(value) exceeds the data")
        }
        return Int(value)
    }

    private mutating func integer<T: FixedWidthInteger>() throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw DecodingError(description: "truncated record") }
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { target in
            bytes.withUnsafeBytes { source in
                target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + size]))
            }
        }
        offset += size
        return T(littleEndian: value)
    }
}
