import XCTest
@testable import ExtentFS

/// The crash-replay proof with the engine's backing store on a real nbdkit (issue 13: "the
/// crash-replay harness covers the NBD store too"). The recorder above the store interface
/// records each workload as for a file, and the images are rebuilt and checked at every flush
/// point as CrashReplayTests does; besides, the server's own durable image (nbdkit's file plugin
/// behind its cache filter, which holds writes until a flush: CrashNBDExport) is copied at every
/// flush point and checked against them and on its own (CrashServerCopies). The same workloads
/// and budgets as CrashReplayTests (CrashTestSettings; scripts/crash-test.sh runs them longer).
final class CrashReplayOnNBDTests: XCTestCase {
    func testOverwriteInPlaceAfterCommit() throws { try replay(.overwriteInPlaceAfterCommit) }
    func testSizeWithoutData() throws { try replay(.sizeWithoutData) }
    func testSharedBlockOverwrittenByBothSharers() throws { try replay(.sharedBlockOverwrittenByBoth) }
    func testUnlinkedOpenFile() throws { try replay(.unlinkedOpenFile) }
    func testRenamesAndDirectories() throws { try replay(.renamesAndDirectories) }
    func testTruncatesAndXattrs() throws { try replay(.truncatesAndXattrs) }
    func testOverwritesWrittenThrough() throws { try replay(.overwritesWrittenThrough) }

    func testRandomWorkloads() throws {
        let first = CrashTestSettings.firstSeed
        for seed in first..<first + max(1, CrashTestSettings.seeds) {
            try replay(.random(seed: UInt64(seed), steps: CrashTestSettings.randomSteps))
        }
    }

    /// The same checks must fail on a server that ignores flushes (the cache filter's unsafe
    /// mode): the writes the engine flushed never reach the server's durable image. Both the
    /// comparison with the rebuilt images and the crash checks of the copies must say so.
    func testAServerThatIgnoresFlushesIsCaught() throws {
        let report = CrashReport()
        try CrashReplay(workload: .overwriteInPlaceAfterCommit, blockSize: 4096, subsets: 0,
                        backing: .nbd(.unsafe)).run(into: report)
        let failures = report.failures
        XCTAssertTrue(failures.contains { $0.contains("a flush did not make the writes before it durable") },
                      "the server copies were not found lacking: \(failures)")
        XCTAssertTrue(failures.contains { $0.contains("fsync /a returned before the crash") && $0.contains("the server's durable image after flush") },
                      "the crash checks of the server's durable image found no lost fsync: \(failures)")
        XCTAssertFalse(failures.contains { !$0.contains("the server's durable image") },
                       "the images rebuilt from the recorder (above the store) should be sound: \(failures)")
    }

    private func replay(_ workload: CrashWorkload, file: StaticString = #filePath, line: UInt = #line) throws {
        if let filter = CrashTestSettings.workloadFilter, !workload.name.contains(filter) { return }
        let report = CrashReport()
        let started = Date()
        for blockSize in CrashTestSettings.blockSizes {
            try CrashReplay(workload: workload, blockSize: blockSize, subsets: CrashTestSettings.subsetsPerCrashPoint,
                            backing: .nbd(.writeback)).run(into: report)
        }
        report.assertClean("crash replay on NBD of \(workload) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s",
                           file: file, line: line)
    }
}
