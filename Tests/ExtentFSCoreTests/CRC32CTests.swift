import XCTest
@testable import ExtentFSCore

/// The checksum every node, record and superblock carries: the CPU's instruction and the table
/// path agree with the bitwise definition at every length and alignment, so an image written on
/// one machine checks on another.
final class CRC32CTests: XCTestCase {
    private func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = ~0
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    func testTheCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.portableChecksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    func testBothPathsMatchTheDefinitionAtEveryLengthAndAlignment() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let buffer: [UInt8] = (0..<4200).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 15, 16, 63, 64, 100, 511, 4096] where start + length <= buffer.count {
                let slice = Array(buffer[start..<start + length])
                let expected = bitwise(slice)
                XCTAssertEqual(CRC32C.checksum(slice), expected, "start \(start), length \(length)")
                XCTAssertEqual(CRC32C.portableChecksum(slice), expected, "start \(start), length \(length), tables")
                buffer.withUnsafeBytes { whole in
                    XCTAssertEqual(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: whole[start..<start + length])), expected,
                                   "unaligned, start \(start)")
                }
            }
        }
    }
}
