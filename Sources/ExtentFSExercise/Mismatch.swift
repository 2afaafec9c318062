import CExerciseSyscalls

/// Describes how bytes read back differ from the model: where the first difference is, how far
/// the damage reaches, and the bytes on both sides, so a log reader can tell zeros from stale
/// data from shifted data.
enum Mismatch {
    /// Nil when `actual` equals `expected[offset..<offset + actual.count]`.
    static func describe(expected: [UInt8], at offset: Int, actual: UnsafeRawBufferPointer) -> String? {
        guard actual.count > 0 else { return nil }
        return expected.withUnsafeBytes { model -> String? in
            let wanted = UnsafeRawBufferPointer(rebasing: model[offset..<offset + actual.count])
            let left = wanted.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let right = actual.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let first = exercise_first_difference(left, right, actual.count)
            guard first < actual.count else { return nil }
            let last = exercise_last_difference(left, right, actual.count)
            let differing = (first...last).reduce(0) { $0 + (wanted[$1] != actual[$1] ? 1 : 0) }
            let allZero = exercise_first_nonzero(right + first, last - first + 1) == last - first + 1
            let shown = first..<min(actual.count, first + 16)
            return "bytes differ from \(hex(UInt64(offset + first))) to \(hex(UInt64(offset + last + 1))) " +
                "(\(differing) bytes differ\(allZero ? ", read as zeros" : ""))\n" +
                "  expected: \(hexBytes(wanted, shown))\n" +
                "  actual:   \(hexBytes(actual, shown))"
        }
    }

    private static func hexBytes(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        range.map { byte in
            let text = String(bytes[byte], radix: 16)
            return text.count == 1 ? "0" + text : text
        }.joined(separator: " ")
    }
}

