import XCTest
@testable import ExtentFS

/// The crash workloads with one write or flush failing (EIO or ENOSPC), for every write and
/// flush or a seeded sample (EXTENTFS_FAULT_LIMIT), at block sizes 1024, 4096 and 65536. See
/// FaultInjection for the contract checked.
final class FaultInjectionTests: XCTestCase {
    func testOverwriteInPlaceAfterCommit() throws { try inject(.overwriteInPlaceAfterCommit) }
    func testSizeWithoutData() throws { try inject(.sizeWithoutData) }
    func testSharedBlockOverwrittenByBothSharers() throws { try inject(.sharedBlockOverwrittenByBoth) }
    func testUnlinkedOpenFile() throws { try inject(.unlinkedOpenFile) }
    func testRenamesAndDirectories() throws { try inject(.renamesAndDirectories) }
    func testTruncatesAndXattrs() throws { try inject(.truncatesAndXattrs) }
    func testOverwritesWrittenThrough() throws { try inject(.overwritesWrittenThrough) }

    func testRandomWorkloads() throws {
        let first = CrashTestSettings.firstSeed
        for seed in first..<first + max(1, CrashTestSettings.seeds) {
            try inject(.random(seed: UInt64(seed), steps: CrashTestSettings.randomSteps))
        }
    }

    private func inject(_ workload: CrashWorkload, file: StaticString = #filePath, line: UInt = #line) throws {
        if let filter = CrashTestSettings.workloadFilter, !workload.name.contains(filter) { return }
        let report = CrashReport()
        let started = Date()
        var unfired = 0
        for blockSize in CrashTestSettings.blockSizes {
            let injection = FaultInjection(workload: workload, blockSize: blockSize)
            let scope = "bs \(blockSize), \(workload)"
            TrapReporter.running("\(scope): counting writes and flushes")
            let (writes, flushes) = try injection.count()
            // One fault asked for is injected whether or not the sample would have picked it.
            let limit = CrashTestSettings.onlyFault == nil ? CrashTestSettings.faultLimit : 0
            let faults = injection.faults(writes: writes, flushes: flushes, limit: limit)
                .filter { fault in CrashTestSettings.onlyFault.map { $0 == "\(fault.kind)#\(fault.ordinal)" } ?? true }
            if let only = CrashTestSettings.onlyFault, faults.isEmpty {
                // Say so: a reproduction that checks nothing must not look like a pass.
                print("\(scope): EXTENTFS_FAULT_ONLY=\(only) is none of this run's \(writes) writes and \(flushes) flushes")
            }
            for fault in faults {
                let context = "\(scope), \(fault) (of \(writes) writes and \(flushes) flushes)"
                TrapReporter.running(context)
                if let findings = try injection.run(fault) {
                    report.add(findings, blockSize: blockSize, context: context)
                } else {
                    // The run issued fewer writes or flushes than the counting run: nothing to
                    // check, but worth knowing.
                    unfired += 1
                    if CrashTestSettings.trace { print("\(context): never fired") }
                }
            }
        }
        if unfired > 0 { print("fault injection of \(workload): \(unfired) faults never fired") }
        report.assertClean("fault injection of \(workload) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s", file: file, line: line)
    }
}
