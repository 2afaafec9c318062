import XCTest
import SystemPackage
@testable import ExtentFS

/// A read maps a file's blocks and then reads them from disk. In between, copy-on-write
/// writeback can move the file to new blocks and, once the file that shared the old ones lets
/// go too, a commit can make them free: they must not be reallocated and overwritten before the
/// read has them.
final class BlockReuseTests: XCTestCase {
    /// O_DIRECT holds no page locks, so Journal.reuseBarrier does it. Checked by taking
    /// the reuse barrier out of `readBypassingCache`: the mutator ran to the end during the pause
    /// and the read returned the thief's bytes.
    func testDirectReadVersusReuseOfBlocksCopiedOnWrite() throws {
        try checkReadVersusReuse(blockSize: 4096, direct: true)
    }

    /// Blocks larger than pages: writeback copies a block on write for a dirty page while a fill
    /// of another page of the same block is under way. No barrier here: writeback locks every
    /// cached page of the block first, so the fill's page lock holds it off.
    func testPageFillVersusReuseOfBlocksCopiedOnWrite() throws {
        try checkReadVersusReuse(blockSize: 65536, direct: false)
    }

    /// A random read of pages not cached reads around the cache as O_DIRECT does, with the
    /// same barrier (checked the same way).
    func testUncachedReadVersusReuseOfBlocksCopiedOnWrite() throws {
        try checkReadVersusReuse(blockSize: 4096, direct: false, at: 2 * Page.size)
    }

    private func checkReadVersusReuse(blockSize: Int, direct: Bool, at readOffset: Int = 0) throws {
        let volume = try TestVolume(blockSize: blockSize, size: 32 << 20)
        let length = max(1 << 20, 128 * blockSize)  // more than the metadata reserve keeps back
        let original = try volume.create("original")
        let old = pattern(length, seed: 11)
        try volume.write(original, old, at: 0)
        let sharer = try volume.create("sharer")
        _ = try volume.fs.clone(from: original, sourceOffset: 0, to: sharer, destinationOffset: 0, length: UInt64(length))
        try volume.fs.sync()
        try volume.remount()  // nothing of `original` cached
        let oldMap = try volume.fs.extentMap(original, offset: 0, length: UInt64(length))

        let gate = Gate(.readAfterMapping)
        gate.install(on: volume.fs)
        let readLength = direct ? length : Page.size
        let reader = Background { [fs = volume.fs!] () -> [UInt8] in
            var bytes: [UInt8] = []
            try fs.read(original, offset: UInt64(readOffset), count: readLength, direct: direct) { bytes = Array($0) }
            return bytes
        }
        XCTAssertTrue(gate.waitForArrival())

        // The original is rewritten (behind the read's first page, so that a page fill and the
        // writeback do not share a page lock) and copied on write, the sharer goes, and a thief
        // takes the freed blocks.
        let mutator = Background { [volume] () -> [MappedExtent] in
            let fs = volume.fs!
            _ = try volume.write(original, pattern(length - Page.size, seed: 12), at: UInt64(Page.size))
            try fs.sync()
            try fs.unlink(parent: FileSystem.rootInode, name: Array("sharer".utf8))
            try fs.sync()
            // The thief takes every free block, the freed ones among them.
            let thief = try volume.create("thief")
            let chunk = pattern(256 << 10, seed: 13)
            var written: UInt64 = 0
            while errno(of: { _ = try volume.write(thief, chunk, at: written) }) == nil { written += UInt64(chunk.count) }
            try fs.sync()
            return try fs.extentMap(thief, offset: 0, length: written)
        }
        Thread.sleep(forTimeInterval: blockedWindow)
        XCTAssertFalse(mutator.finished, "the blocks a read has mapped were remapped and freed before it read them")
        gate.release()

        XCTAssertEqual(try reader.join(), Array(old[readOffset..<readOffset + readLength]), "the read returned bytes it never had")
        let thiefMap = try mutator.join()
        print("OLD", oldMap.map { ($0.physical, $0.length) }, "THIEF", thiefMap.map { ($0.physical, $0.length) }, try volume.fs.extentMap(original, offset: 0, length: UInt64(length)).map { ($0.physical, $0.length) })
        XCTAssertTrue(thiefMap.contains { new in oldMap.contains { $0.physical < new.physical + new.length && new.physical < $0.physical + $0.length } },
                      "the scenario needs the freed blocks reused")
        try volume.unmountAndCheck()
    }
}
