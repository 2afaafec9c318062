import ArgumentParser

/// A byte count from the command line: plain bytes or a K, M, G or T suffix (powers of 1024).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible {
    var bytes: UInt64

    init(bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        let multipliers: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(argument)
        var multiplier: UInt64 = 1
        if let last = digits.last?.uppercased().first, let scale = multipliers[last] {
            multiplier = scale
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        bytes = product
    }

    /// The largest exact suffix: 268435456 reads as 256M.
    var description: String {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] as [(String, UInt64)]
        where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }

    var defaultValueDescription: String { description }
}
