import XCTest
import SystemPackage
@testable import ExtentFS

/// The five rules of DESIGN.md, each shown by holding one thread inside the race window its seed
/// describes while another runs. Each test names the protection it proves and how its failure was
/// seen when that protection was taken away.
final class RuleTests: XCTestCase {
    /// Rule 1 (seed 001): a read racing a hole punch must not bring back pages of the punched range
    /// from the old mapping, even when another file reuses the freed blocks.
    /// Checked by removing `inode.invalidateLock.lockShared()` from `read`: the reader then ran
    /// during the pause, cached the old data and returned it (the assertions on zeros failed).
    func testPunchVersusPageCacheFill() throws {
        let volume = try TestVolume(blockSize: 4096, size: 16 << 20)
        let victim = try volume.create("victim")
        let length = 64 << 10
        try volume.write(victim, pattern(length, seed: 1), at: 0)
        try volume.remount()
        let oldMap = try volume.fs.extentMap(victim, offset: 0, length: UInt64(length))
        let fs = volume.fs!
        let gate = Gate(.punchAfterDroppingPages)
        gate.install(on: fs)

        let punch = Background { try fs.fallocate(victim, offset: 0, length: UInt64(length), mode: [.punchHole, .keepSize]) }
        XCTAssertTrue(gate.waitForArrival())
        let reader = Background { () -> [UInt8] in
            var bytes: [UInt8] = []
            try fs.read(victim, offset: 0, count: length) { bytes = Array($0) }
            return bytes
        }
        Thread.sleep(forTimeInterval: blockedWindow)
        XCTAssertFalse(reader.finished, "a read filled pages while the punch held the range")
        gate.release()
        try punch.join()

        // The punched blocks become free at the commit; another file takes them.
        try fs.sync()
        let thief = try volume.create("thief")
        try volume.write(thief, pattern(length, seed: 2), at: 0)
        try fs.sync()
        let newMap = try fs.extentMap(thief, offset: 0, length: UInt64(length))
        XCTAssertTrue(newMap.contains { new in oldMap.contains { $0.physical < new.physical + new.length && new.physical < $0.physical + $0.length } },
                      "the scenario needs the freed blocks reused")

        let zeros = [UInt8](repeating: 0, count: length)
        XCTAssertEqual(try reader.join(), zeros)
        XCTAssertEqual(try volume.read(victim, length, at: 0), zeros)
        try volume.unmountAndCheck()
    }

    /// Rule 2 (seed 000): dedupe compares and remaps as one step; a writer (buffered or O_DIRECT)
    /// cannot change the destination in between.
    /// Checked by taking the inode locks out of `remapOperation`: the writer's bytes landed in the
    /// destination's cache after the compare and were lost when the range was linked to the source.
    func testDedupeVersusConcurrentWriter() throws {
        for direct in [false, true] {
            let volume = try TestVolume(blockSize: 4096)
            let source = try volume.create("source")
            let destination = try volume.create("destination")
            let data = pattern(64 << 10, seed: 3)
            try volume.write(source, data, at: 0)
            try volume.write(destination, data, at: 0)
            let fs = volume.fs!
            let gate = Gate(.dedupeAfterCompare)
            gate.install(on: fs)

            let dedupe = Background { try fs.dedupe(from: source, sourceOffset: 0, length: UInt64(data.count), to: destination, destinationOffset: 0) }
            XCTAssertTrue(gate.waitForArrival())
            let update = [UInt8](repeating: 0xEE, count: 4096)
            let writer = Background { try update.withUnsafeBytes { try fs.write(destination, offset: 4096, direct: direct, $0) } }
            Thread.sleep(forTimeInterval: blockedWindow)
            XCTAssertFalse(writer.finished, "a writer changed the destination between compare and remap (direct: \(direct))")
            gate.release()
            XCTAssertEqual(try dedupe.join(), .same(bytes: UInt64(data.count)))
            XCTAssertEqual(try writer.join(), 4096)

            var expected = data
            expected.replaceSubrange(4096..<8192, with: update)
            for _ in 0..<2 {
                XCTAssertEqual(try volume.read(source, data.count, at: 0), data, "direct: \(direct)")
                XCTAssertEqual(try volume.read(destination, data.count, at: 0), expected, "direct: \(direct)")
                try volume.remount()
            }
            try volume.unmountAndCheck()
        }
    }

    /// Rule 3 (seed 002): with blocks smaller than pages, a page made uptodate by a whole-page read
    /// and then partly written has all units uptodate and exactly the written ones dirty, and
    /// writeback writes exactly those blocks: bytes another party put on disk in the other blocks
    /// of the page survive. A write to another unit while writeback holds the page is not lost.
    /// Checked by making writeback write every uptodate unit of a page: the on-disk change to
    /// block 0 was overwritten with the cached copy.
    func testPerBlockStateOnAnUptodatePage() throws {
        for blockSize in [512, 1024, 2048] {
            let volume = try TestVolume(blockSize: blockSize)
            let file = try volume.create("file")
            let original = pattern(4096, seed: 4)
            try volume.write(file, original, at: 0)
            try volume.remount()
            let fs = volume.fs!
            XCTAssertEqual(try volume.read(file, 4096, at: 0), original)
            let inode = try fs.inode(file)
            let unitsPerPage = 4096 / blockSize

            try volume.write(file, Array(repeating: 0x11, count: 10), at: UInt64(blockSize + 5))
            let page = inode.pages!.find(0)!
            page.lock.withLock {
                XCTAssertEqual(page.uptodate, Page.unitMask(0, unitsPerPage), "state of an uptodate page starts all-uptodate")
                XCTAssertEqual(page.dirty, 1 << 1, "only the written block is dirty")
            }
            inode.pages!.release(page)

            // Someone else's bytes in block 0, straight on disk: writeback must not touch them.
            let block0 = try fs.extentMap(file, offset: 0, length: UInt64(blockSize))[0].physical
            let foreign = [UInt8](repeating: 0x77, count: 16)
            try fs.store.write(foreign, at: block0)

            let gate = Gate(.writebackBeforeWrite)
            gate.install(on: fs)
            let writeback = Background { try fs.sync() }
            XCTAssertTrue(gate.waitForArrival())
            let lastUnit = UInt64((unitsPerPage - 1) * blockSize)
            let writer = Background { try volume.write(file, Array(repeating: 0x22, count: 8), at: lastUnit + 1) }
            Thread.sleep(forTimeInterval: blockedWindow)
            XCTAssertFalse(writer.finished, "a writer changed a page under writeback")
            gate.release()
            try writeback.join()
            _ = try writer.join()
            try fs.sync()
            try volume.remount()

            var expected = original
            expected.replaceSubrange(0..<16, with: foreign)
            expected.replaceSubrange(blockSize + 5..<blockSize + 15, with: [UInt8](repeating: 0x11, count: 10))
            expected.replaceSubrange(Int(lastUnit) + 1..<Int(lastUnit) + 9, with: [UInt8](repeating: 0x22, count: 8))
            XCTAssertEqual(try volume.read(file, 4096, at: 0), expected, "block size \(blockSize)")
            try volume.unmountAndCheck()
        }
    }

    /// Rule 4 (seed 003): reclaim and writeback under a tiny budget never strip a page someone
    /// holds: the pinned dirty page keeps its data, its state and its reserved space.
    /// Checked by letting `evictClean` skip the `references == 0` test: the pinned page was
    /// evicted once clean and its memory reused, so the pinned copy no longer matched.
    func testPinnedDirtyPageSurvivesReclaimAndWriteback() throws {
        let volume = try TestVolume(blockSize: 1024, size: 64 << 20, cacheBytes: 256 << 10)
        let fs = volume.fs!
        let pinnedFile = try volume.create("pinned")
        let mine = pattern(4096, seed: 5)
        try volume.write(pinnedFile, mine, at: 0)
        let space = try fs.inode(pinnedFile).pages!
        let page = space.find(0)!
        let freeWithReservation = fs.statistics().freeBlocks

        let other = try volume.create("other")
        for round in 0..<8 {
            try volume.write(other, pattern(512 << 10, seed: UInt64(round)), at: UInt64(round) << 19)
            fs.cache.reclaim()
        }
        try fs.sync()
        fs.cache.reclaim()
        fs.cache.reclaim()

        XCTAssertTrue(space.find(0) === page, "the pinned page left the cache")
        space.release(page)
        page.lock.withLock {
            XCTAssertEqual(page.uptodate, 0xF)
            XCTAssertFalse(page.isDirty, "writeback wrote the pinned page")
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: page.memory, count: 4096)), mine)
        }
        XCTAssertEqual(try fs.extentMap(pinnedFile, offset: 0, length: 4096).map(\.flags), [.last], "the page's blocks are allocated and written")
        XCTAssertLessThanOrEqual(fs.statistics().freeBlocks, freeWithReservation)
        space.release(page)
        try volume.remount()
        XCTAssertEqual(try volume.read(pinnedFile, 4096, at: 0), mine)
        try volume.unmountAndCheck()
    }

    /// Rule 5 (seed 004): "nobody holds this page" and its removal from the index are one step
    /// under the index lock, so a lookup cannot take a reference in between.
    /// Checked by unlocking the index between the check and the removal in `evictClean`: the
    /// lookup returned the page that eviction then removed and freed.
    func testLookupVersusRemovalFromTheIndex() throws {
        let volume = try TestVolume(blockSize: 4096)
        let fs = volume.fs!
        let file = try volume.create("file")
        try volume.write(file, pattern(4096, seed: 6), at: 0)
        try fs.sync()
        let space = try fs.inode(file).pages!
        XCTAssertEqual(space.evictClean(limit: 1).count, 0, "the first pass only clears the recently-used bit")

        let gate = Gate(.evictAfterUnusedCheck)
        gate.install(on: fs)
        let eviction = Background { space.evictClean(limit: 1) }
        XCTAssertTrue(gate.waitForArrival())
        let lookup = Background { space.find(0) }
        Thread.sleep(forTimeInterval: blockedWindow)
        XCTAssertFalse(lookup.finished, "a lookup ran between the unused check and the removal")
        gate.release()
        let evicted = try eviction.join()
        XCTAssertEqual(evicted.count, 1)
        XCTAssertNil(try lookup.join(), "the lookup took a reference to an evicted page")
        for page in evicted { fs.cache.pageRemoved(page) }
        XCTAssertEqual(try volume.read(file, 4096, at: 0), pattern(4096, seed: 6))
        try volume.unmountAndCheck()
    }
}
