import Foundation

/// A flag set once by one thread and read by others.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// What a file should hold, kept by the one thread that changes the file.
final class ExpectedBytes: @unchecked Sendable {
    private(set) var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func truncate(to size: Int) {
        if size < bytes.count { bytes.removeSubrange(size...) } else { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
    }
    /// PUNCH_HOLE|KEEP_SIZE: zeros within the size.
    func punch(_ offset: Int, _ length: Int) {
        let end = min(offset + length, bytes.count)
        if offset < end { bytes.replaceSubrange(offset..<end, with: [UInt8](repeating: 0, count: end - offset)) }
    }
    /// nil when `actual` is what the file should hold, else where it first is not (an
    /// assertion on the arrays would print both whole).
    func mismatch(_ actual: [UInt8]) -> String? {
        guard actual != bytes else { return nil }
        let index = zip(bytes, actual).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(bytes.count, actual.count)
        return "differs from byte \(index) (\(actual.count) bytes read, \(bytes.count) expected)"
    }
    func write(_ data: [UInt8], at offset: Int) {
        if offset + data.count > bytes.count { bytes += [UInt8](repeating: 0, count: offset + data.count - bytes.count) }
        bytes.replaceSubrange(offset..<offset + data.count, with: data)
    }
}
