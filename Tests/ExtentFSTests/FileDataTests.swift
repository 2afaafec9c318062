import ExtentFSCore
import XCTest
import SystemPackage
@testable import ExtentFS

final class FileDataTests: XCTestCase {
    static let blockSizes = [512, 1024, 4096, 65536]

    func testWriteReadRemountAtEveryBlockSize() throws {
        for blockSize in Self.blockSizes {
            let volume = try TestVolume(blockSize: blockSize)
            let sizes = [0, 1, blockSize - 1, blockSize, blockSize + 1, 4095, 4096, 4097, 3 << 20 + 123]
            var files: [(InodeNumber, [UInt8])] = []
            for (index, size) in sizes.enumerated() {
                let ino = try volume.create("f\(index)")
                let data = pattern(size, seed: UInt64(index + blockSize))
                if size > 0 { XCTAssertEqual(try volume.write(ino, data, at: 0), size) }
                files.append((ino, data))
                XCTAssertEqual(try volume.read(ino, size + 10, at: 0), data, "block size \(blockSize) size \(size) before remount")
            }
            try volume.remount()
            for (ino, data) in files {
                XCTAssertEqual(try volume.fs.getattr(ino).size, UInt64(data.count))
                XCTAssertEqual(try volume.read(ino, data.count + 10, at: 0), data, "block size \(blockSize) size \(data.count) after remount")
            }
            try volume.unmountAndCheck()
        }
    }

    func testUnalignedOverwritesKeepNeighbouringBytes() throws {
        for blockSize in Self.blockSizes {
            let volume = try TestVolume(blockSize: blockSize)
            let ino = try volume.create("f")
            var model = pattern(200_000, seed: 7)
            try volume.write(ino, model, at: 0)
            try volume.fs.sync()
            var seed: UInt64 = 1
            for _ in 0..<40 {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                let offset = Int(seed >> 33) % 190_000
                let length = Int(seed >> 20) % 9000 + 1
                let data = pattern(length, seed: seed)
                try volume.write(ino, data, at: UInt64(offset))
                let end = offset + length
                if end > model.count { model += [UInt8](repeating: 0, count: end - model.count) }
                model.replaceSubrange(offset..<end, with: data)
            }
            XCTAssertEqual(try volume.read(ino, model.count, at: 0), model)
            try volume.remount()
            XCTAssertEqual(try volume.read(ino, model.count, at: 0), model, "block size \(blockSize)")
            try volume.unmountAndCheck()
        }
    }

    func testSparseFileAllocatesOnlyWhatIsWritten() throws {
        for blockSize in [1024, 4096] {
            let volume = try TestVolume(blockSize: blockSize)
            let ino = try volume.create("sparse")
            let end: UInt64 = 1 << 30
            try volume.write(ino, Array("tail".utf8), at: end - 4)
            try volume.remount()
            let attributes = try volume.fs.getattr(ino)
            XCTAssertEqual(attributes.size, end)
            XCTAssertEqual(attributes.blocks, UInt64(blockSize / 512))
            XCTAssertEqual(try volume.read(ino, 8192, at: 1 << 20), [UInt8](repeating: 0, count: 8192))
            XCTAssertEqual(try volume.read(ino, 4, at: end - 4), Array("tail".utf8))
            XCTAssertEqual(try volume.fs.seek(ino, offset: 0, to: .data), (end - 4) / UInt64(blockSize) * UInt64(blockSize))
            XCTAssertEqual(try volume.fs.seek(ino, offset: 0, to: .hole), 0)
            XCTAssertEqual(errno { _ = try volume.fs.seek(ino, offset: end, to: .data) }, .noSuchAddressOrDevice)
            try volume.unmountAndCheck()
        }
    }

    func testTruncateDownZeroesTheTailAndFreesBlocks() throws {
        for blockSize in Self.blockSizes {
            let volume = try TestVolume(blockSize: blockSize)
            let ino = try volume.create("t")
            let data = pattern(300_000, seed: 3)
            try volume.write(ino, data, at: 0)
            try volume.fs.sync()
            let freeBefore = volume.fs.statistics().freeBlocks
            _ = try volume.fs.setattr(ino, AttributeChanges(size: 1000))
            _ = try volume.fs.setattr(ino, AttributeChanges(size: 300_000))
            var expected = Array(data[0..<1000])
            expected += [UInt8](repeating: 0, count: 300_000 - 1000)
            XCTAssertEqual(try volume.read(ino, 300_000, at: 0), expected)
            try volume.remount()
            XCTAssertEqual(try volume.read(ino, 300_000, at: 0), expected, "block size \(blockSize)")
            XCTAssertGreaterThan(volume.fs.statistics().freeBlocks, freeBefore)
            try volume.unmountAndCheck()
        }
    }

    func testSmallCacheBudgetReclaimsAndKeepsData() throws {
        let volume = try TestVolume(blockSize: 1024, size: 128 << 20, cacheBytes: 256 << 10)
        let ino = try volume.create("big")
        let data = pattern(8 << 20, seed: 11)
        var offset = 0
        while offset < data.count {
            let chunk = Array(data[offset..<min(data.count, offset + 100_000)])
            try volume.write(ino, chunk, at: UInt64(offset))
            offset += chunk.count
        }
        XCTAssertLessThanOrEqual(volume.fs.cache.cachedPages, volume.fs.cache.budgetPages + 64)
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.remount()
        XCTAssertEqual(try volume.read(ino, data.count, at: 0), data)
        try volume.unmountAndCheck()
    }

    func testFullDiskGivesENOSPCAndKeepsWhatWasWritten() throws {
        for blockSize in [1024, 4096] {
            let volume = try TestVolume(blockSize: blockSize, size: 4 << 20)
            var written: [(InodeNumber, [UInt8])] = []
            var sawNoSpace = false
            for index in 0..<100 {
                // Metadata is charged to space: on a full volume a create fails too.
                guard let ino = try? volume.create("fill\(index)") else {
                    XCTAssertEqual(errno { _ = try volume.create("fill\(index)") }, .noSpace)
                    sawNoSpace = true
                    break
                }
                let data = pattern(300_000, seed: UInt64(index))
                do {
                    let count = try volume.write(ino, data, at: 0)
                    written.append((ino, Array(data[0..<count])))
                    if count < data.count { sawNoSpace = true }
                } catch Errno.noSpace {
                    sawNoSpace = true
                    written.append((ino, []))
                    break
                }
            }
            XCTAssertTrue(sawNoSpace)
            XCTAssertEqual(errno { try volume.write(written[0].0, [1, 2, 3], at: 10 << 20) }, .noSpace)
            try volume.fs.sync()
            for (ino, data) in written { XCTAssertEqual(try volume.read(ino, data.count, at: 0), data) }
            try volume.remount()
            for (ino, data) in written { XCTAssertEqual(try volume.read(ino, data.count, at: 0), data) }
            // Freeing a file makes room again.
            try volume.fs.unlink(parent: FileSystem.rootInode, name: Array("fill0".utf8))
            volume.fs.forget(written[0].0, count: 10)
            volume.fs.release(written[0].0)
            // At once, no sync: the freed blocks wait for a commit, which the write forces.
            let ino = try volume.create("again")
            XCTAssertEqual(try volume.write(ino, pattern(100_000, seed: 99), at: 0), 100_000)
            try volume.unmountAndCheck()
        }
    }
}
