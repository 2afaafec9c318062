import ExtentFSCore
import XCTest
@testable import ExtentFS

/// The cache lists the files that have pages (for reclaim) and those with dirty pages (for
/// writeback of everything), so neither walks every file of the volume. The listings follow
/// writes, writeback, eviction and unlink.
final class PageCacheListingTests: XCTestCase {
    private func dirtyFiles(_ volume: TestVolume) -> Set<InodeNumber> {
        Set(volume.fs.cache.spacesWithDirtyPages.map(\.ino))
    }

    func testDirtyListingFollowsWritesAndWriteback() throws {
        let volume = try TestVolume()
        var files: [InodeNumber] = []
        for index in 0..<50 { files.append(try volume.create("f\(index)")) }
        XCTAssertEqual(dirtyFiles(volume), [])
        for ino in files.prefix(10) { try volume.write(ino, Array(repeating: 7, count: 5000), at: 0) }
        XCTAssertEqual(dirtyFiles(volume), Set(files.prefix(10)))
        try volume.fs.sync()
        XCTAssertEqual(dirtyFiles(volume), [])
        XCTAssertEqual(volume.fs.cache.dirtyPages, 0)

        // Written back by writeback of everything, which visits only the listed files.
        try volume.write(files[20], [1, 2, 3], at: 100_000)
        XCTAssertEqual(dirtyFiles(volume), [files[20]])
        try volume.fs.writebackAll()
        XCTAssertEqual(dirtyFiles(volume), [])
        XCTAssertEqual(try volume.read(files[20], 3, at: 100_000), [1, 2, 3])

        // A dirty file unlinked and reaped leaves both listings.
        try volume.write(files[30], [9], at: 0)
        XCTAssertTrue(dirtyFiles(volume).contains(files[30]))
        try volume.fs.unlink(parent: FileSystem.rootInode, name: Array("f30".utf8))
        volume.fs.forget(files[30], count: 1)  // the kernel's reference and open file from the create
        volume.fs.release(files[30])
        XCTAssertFalse(dirtyFiles(volume).contains(files[30]))
        XCTAssertEqual(volume.fs.cache.dirtyPages, 0)
        try volume.unmountAndCheck()
    }

    func testReclaimKeepsTheBudgetAcrossManySmallFiles() throws {
        // 64 pages of budget, 600 files of one page each: reclaim walks the listed files in
        // batches and evicts the clean ones; the data stays readable.
        let volume = try TestVolume(cacheBytes: 64 * Page.size)
        var files: [InodeNumber] = []
        for index in 0..<600 {
            let ino = try volume.create("s\(index)")
            try volume.write(ino, Array(repeating: UInt8(index % 251), count: 100), at: 0)
            files.append(ino)
            if index % 50 == 49 { try volume.fs.sync() }
        }
        try volume.fs.sync()
        for (index, ino) in files.enumerated() {
            XCTAssertEqual(try volume.read(ino, 100, at: 0), Array(repeating: UInt8(index % 251), count: 100))
        }
        XCTAssertLessThanOrEqual(volume.fs.cache.cachedPages, volume.fs.cache.budgetPages)
        try volume.unmountAndCheck()
    }
}
