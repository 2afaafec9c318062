import XCTest
@testable import ExtentFS

/// The durability proof (DESIGN.md, "Durability"): each workload runs on a recording store, and
/// the image is rebuilt and checked at every flush point with none, all and random subsets (some
/// torn) of the writes in flight. See CrashReplay and CrashChecker for what is checked.
/// Block sizes 1024, 4096 and 65536; CrashTestSettings says how to run longer.
final class CrashReplayTests: XCTestCase {
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

    private func replay(_ workload: CrashWorkload, file: StaticString = #filePath, line: UInt = #line) throws {
        if let filter = CrashTestSettings.workloadFilter, !workload.name.contains(filter) { return }
        let report = CrashReport()
        let started = Date()
        for blockSize in CrashTestSettings.blockSizes {
            try CrashReplay(workload: workload, blockSize: blockSize, subsets: CrashTestSettings.subsetsPerCrashPoint).run(into: report)
        }
        report.assertClean("crash replay of \(workload) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s", file: file, line: line)
    }
}
