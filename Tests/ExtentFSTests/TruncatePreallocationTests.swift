import SystemPackage
import XCTest
@testable import ExtentFS

/// xfstests generic/092: a truncate to the file's current size frees the blocks preallocated
/// past EOF with fallocate KEEP_SIZE, as XFS's does; it used to change nothing. A truncate that
/// grows the file keeps them (XFS frees past EOF only when the size stays or shrinks).
final class TruncatePreallocationTests: XCTestCase {
    func testTruncateToTheSameSizeFreesPreallocationPastEOF() throws {
        for blockSize in [1024, 4096, 65536] {
            let volume = try TestVolume(blockSize: blockSize)
            let fs = volume.fs!
            let ino = try volume.create("f")
            let bs = UInt64(blockSize)
            let size = 5 * bs + 100
            try volume.write(ino, pattern(Int(size), seed: 9), at: 0)
            try fs.sync()
            let written = try fs.getattr(ino).blocks

            try fs.fallocate(ino, offset: size, length: 10 * bs, mode: .keepSize)
            XCTAssertGreaterThan(try fs.getattr(ino).blocks, written, "block size \(blockSize): preallocation")
            XCTAssertEqual(try fs.getattr(ino).size, size)

            _ = try fs.setattr(ino, AttributeChanges(size: size))
            XCTAssertEqual(try fs.getattr(ino).blocks, written, "block size \(blockSize): blocks after truncate to the same size")
            XCTAssertEqual(try fs.extentMap(ino, offset: 6 * bs, length: 20 * bs), [], "block size \(blockSize): extents past EOF")
            XCTAssertEqual(try volume.read(ino, Int(size), at: 0), pattern(Int(size), seed: 9))

            // Growing keeps what lies past the new end.
            try fs.fallocate(ino, offset: 8 * bs, length: 4 * bs, mode: .keepSize)
            let preallocated = try fs.getattr(ino).blocks
            _ = try fs.setattr(ino, AttributeChanges(size: 7 * bs))
            XCTAssertEqual(try fs.getattr(ino).blocks, preallocated, "block size \(blockSize): truncate up")
            XCTAssertEqual(try fs.getattr(ino).size, 7 * bs)

            try volume.remount()
            XCTAssertEqual(try volume.fs.getattr(ino).blocks, preallocated)
            try volume.unmountAndCheck()
        }
    }
}
