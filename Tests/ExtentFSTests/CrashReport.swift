import XCTest

/// Collects findings over many crash points or faults and reports each distinct failure once,
/// with how many cases showed it, at which block sizes, and where the first one was (so it can
/// be reproduced), rather than the same bug hundreds of times.
final class CrashReport {
    private struct Entry {
        var first: String
        var count: Int
        var blockSizes: Set<Int>
    }

    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    private(set) var casesChecked = 0

    /// `context` says where the case is (block size, workload, crash point or fault) and heads
    /// the first message of each distinct failure.
    func add(_ findings: [CrashFinding], blockSize: Int, context: String) {
        casesChecked += 1
        for finding in findings {
            if entries[finding.key] == nil {
                entries[finding.key] = Entry(first: "\(context):\n    \(finding.message)", count: 0, blockSizes: [])
                order.append(finding.key)
            }
            entries[finding.key]!.count += 1
            entries[finding.key]!.blockSizes.insert(blockSize)
        }
    }

    var failures: [String] {
        order.map { key in
            let entry = entries[key]!
            let sizes = entry.blockSizes.sorted().map(String.init).joined(separator: ", ")
            return entry.first + "\n    (\(entry.count) cases failed this check, at block sizes \(sizes))"
        }
    }

    func assertClean(_ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for failure in failures { XCTFail(failure, file: file, line: line) }
        print("\(what): \(casesChecked) cases checked, \(failures.count) distinct failures")
    }
}
