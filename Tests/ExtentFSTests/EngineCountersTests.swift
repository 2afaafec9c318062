import XCTest
@testable import ExtentFS

/// The engine's counters (`FileSystem.counters()`, what `extentfs stats` prints): each moves
/// with the work it counts, in-process, where nothing caches pages in front of the engine.
final class EngineCountersTests: XCTestCase {
    func testCountersFollowReadsWritebackCommitsAndCheckpoints() throws {
        let volume = try TestVolume()
        let start = volume.fs.counters()
        XCTAssertEqual(start.pageCacheHits, 0)
        XCTAssertNil(start.shutdownReason)
        XCTAssertGreaterThan(start.logCapacityBytes, 0)

        let file = try volume.create("file")
        try volume.write(file, [UInt8](repeating: 7, count: 8 * Page.size), at: 0)
        XCTAssertEqual(volume.fs.counters().dirtyBytes, UInt64(8 * Page.size))
        try volume.fs.fsync(file, dataOnly: false)
        let synced = volume.fs.counters()
        XCTAssertEqual(synced.dirtyBytes, 0)
        XCTAssertEqual(synced.writtenBackBytes, UInt64(8 * Page.size))
        XCTAssertEqual(synced.logCommits, start.logCommits + 1)
        XCTAssertGreaterThan(synced.logUsedBytes, 0)

        // After a remount the cache is cold: the first read misses every page, the second hits.
        try volume.remount()
        let cold = volume.fs.counters()
        XCTAssertEqual(cold.pageCacheHits + cold.pageCacheMisses, 0, "a new mount counts from zero")
        _ = try volume.read(file, 4 * Page.size, at: 0)
        XCTAssertEqual(volume.fs.counters().pageCacheMisses, 4)
        _ = try volume.read(file, 4 * Page.size, at: 0)
        XCTAssertEqual(volume.fs.counters().pageCacheHits, 4)
        XCTAssertEqual(volume.fs.counters().cachedBytes >= UInt64(4 * Page.size), true)

        try volume.fs.sync()
        let checkpoints = volume.fs.counters().checkpoints
        try volume.fs.journal.checkpoint()
        XCTAssertEqual(volume.fs.counters().checkpoints, checkpoints + 1)
        try volume.unmountAndCheck()
    }

    /// A failed data write counts as a writeback error; a failed log write shuts the volume
    /// down, and the counters say why.
    func testWritebackErrorsAndTheShutdownAreReported() throws {
        let volume = try TestVolume()
        let counter = StoreCounter()
        volume.options.storeInterceptor = counter
        try volume.remount()
        let file = try volume.create("file")
        try volume.write(file, [UInt8](repeating: 1, count: Page.size), at: 0)
        counter.failWrites(with: .ioError)
        XCTAssertThrowsError(try volume.fs.fsync(file, dataOnly: false))
        let failed = volume.fs.counters()
        XCTAssertEqual(failed.writebackErrors, 1)
        XCTAssertNil(failed.shutdownReason, "a data write error does not shut the volume down")
        counter.failWrites(with: nil)
        let other = try volume.create("other")
        counter.failFlushes(with: .ioError)
        XCTAssertThrowsError(try volume.fs.fsync(other, dataOnly: false))
        let shutDown = volume.fs.counters()
        XCTAssertNotNil(shutDown.shutdownReason, "a failed log write shuts the volume down")
        XCTAssertGreaterThanOrEqual(shutDown.writebackErrors, 1)
        counter.failFlushes(with: nil)
        XCTAssertThrowsError(try volume.fs.unmount())
        volume.fs = nil
    }
}
