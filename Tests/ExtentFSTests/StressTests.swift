import XCTest
import SystemPackage
@testable import ExtentFS

/// Threads reading (buffered and direct), writing, punching, zeroing, collapsing, inserting,
/// cloning, deduping and truncating across shared files under a tiny cache budget. Every write
/// stores self-validating 8-byte records at 8-byte-aligned offsets and every operation keeps that
/// alignment, so any word a read returns must be zero or a valid record: anything else is data
/// that was never written (stale blocks, another structure's bytes, torn pages). fsck must be
/// clean afterwards. EXTENTFS_STRESS_SECONDS sets the duration (default 6 per block size).
final class StressTests: XCTestCase {
    static let magic: UInt64 = 0xE5F5

    static func record(_ sequence: UInt32) -> UInt64 {
        let high = UInt32(magic) << 16 | (sequence & 0xFFFF)
        return UInt64(high) << 32 | UInt64(mix(high))
    }

    static func isValid(_ word: UInt64) -> Bool {
        word == 0 || (word >> 48 == magic && UInt32(truncatingIfNeeded: word) == mix(UInt32(word >> 32)))
    }

    static func mix(_ value: UInt32) -> UInt32 {
        var x = value &* 0x9E37_79B1
        x ^= x >> 15
        x = x &* 0x85EB_CA77
        return x ^ (x >> 13)
    }

    func testConcurrentOperationsNeverExposeUnwrittenBytes() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["EXTENTFS_STRESS_SECONDS"] ?? "") ?? 6
        for blockSize in [1024, 4096] {
            let volume = try TestVolume(blockSize: blockSize, size: 64 << 20, cacheBytes: 256 << 10)
            let fs = volume.fs!
            let files = try (0..<3).map { try volume.create("stress\($0)") }
            let deadline = Date().addingTimeInterval(seconds)
            let failures = NSLock()
            var problems: [String] = []
            var operations = 0
            let threads = (0..<4).map { thread in
                Background { () -> Int in
                    var state = UInt64(thread + 1) &* 0x2545_F491_4F6C_DD1D
                    func next(_ bound: Int) -> Int {
                        state ^= state << 13; state ^= state >> 7; state ^= state << 17
                        return Int(state % UInt64(max(1, bound)))
                    }
                    let bs = blockSize
                    let span = 64 * max(bs, 4096)
                    var count = 0
                    var sequence = UInt32(thread) << 24
                    while Date() < deadline {
                        let file = files[next(files.count)]
                        let other = files[next(files.count)]
                        count += 1
                        do {
                            switch next(12) {
                            case 0, 1, 2:
                                let words = next(3 * bs / 8) + 1
                                var data = [UInt64](repeating: 0, count: words)
                                for index in data.indices { sequence &+= 1; data[index] = StressTests.record(sequence) }
                                _ = try data.withUnsafeBytes { try fs.write(file, offset: UInt64(next(span / 8) * 8), direct: next(4) == 0, $0) }
                            case 3, 4, 5:
                                let offset = UInt64(next(span / 8) * 8)
                                try fs.read(file, offset: offset, count: next(4 * bs) + 8, direct: next(4) == 0) { bytes in
                                    let words = bytes.count / 8
                                    for index in 0..<words {
                                        let word = bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)
                                        if !StressTests.isValid(word) {
                                            failures.withLock { problems.append("block size \(bs): word \(String(word, radix: 16)) at \(offset + UInt64(index * 8))") }
                                            return
                                        }
                                    }
                                }
                            case 6:
                                try fs.fallocate(file, offset: UInt64(next(span / 8) * 8), length: UInt64(next(4 * bs / 8) * 8 + 8), mode: [.punchHole, .keepSize])
                            case 7:
                                try fs.fallocate(file, offset: UInt64(next(span / 8) * 8), length: UInt64(next(4 * bs / 8) * 8 + 8), mode: next(2) == 0 ? .zeroRange : [.zeroRange, .keepSize])
                            case 8:
                                try fs.fallocate(file, offset: UInt64(next(span / bs) * bs), length: UInt64((next(3) + 1) * bs), mode: next(2) == 0 ? .collapseRange : .insertRange)
                            case 9:
                                _ = try fs.clone(from: other, sourceOffset: UInt64(next(span / bs / 2) * bs), to: file,
                                                 destinationOffset: UInt64(next(span / bs) * bs), length: UInt64((next(4) + 1) * bs))
                            case 10:
                                _ = try fs.dedupe(from: other, sourceOffset: UInt64(next(span / bs) * bs), length: UInt64((next(4) + 1) * bs),
                                                  to: file, destinationOffset: UInt64(next(span / bs) * bs))
                            default:
                                _ = try fs.setattr(file, AttributeChanges(size: UInt64(next(span / 8) * 8)))
                            }
                        } catch let error as Errno where [.invalidArgument, .noSpace, .fileTooLarge].contains(error) {
                            continue
                        }
                    }
                    return count
                }
            }
            for thread in threads { operations += try thread.join(seconds: seconds + 120) }
            XCTAssertEqual(problems.prefix(5).map { $0 }, [], "\(problems.count) bad words")
            XCTAssertGreaterThan(operations, 100)
            try volume.unmountAndCheck()
        }
    }
}
