import Foundation

/// What `extentfs stats` printed, parsed: "NAME VALUE" lines and
/// "request OPCODE COUNT errors ERRORS" lines.
struct StatsReading {
    var values: [String: String] = [:]
    var requests: [String: (count: UInt64, errors: UInt64)] = [:]

    func number(_ name: String) -> UInt64 { values[name].flatMap { UInt64($0) } ?? 0 }
    func requestCount(_ opcode: String) -> UInt64 { requests[opcode]?.count ?? 0 }

    init(parsing output: String) {
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if fields.count == 5, fields[0] == "request", fields[3] == "errors",
               let count = UInt64(fields[2]), let errors = UInt64(fields[4]) {
                requests[fields[1]] = (count, errors)
            } else if fields.count >= 2 {
                values[fields[0]] = fields.dropFirst().joined(separator: " ")
            }
        }
    }
}

extension TestVolume {
    /// `extentfs stats` of this volume's mount, which must succeed.
    func stats() throws -> StatsReading {
        let result = try harness.extentfs(["stats", mountPoint], timeout: 30)
        guard result.succeeded else { throw HarnessError("\(result)") }
        return StatsReading(parsing: result.stdout)
    }
}
