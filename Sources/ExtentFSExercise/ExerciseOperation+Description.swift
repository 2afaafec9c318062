/// One line per operation for the failure log, in the spirit of fsx's: offsets in hex, ranges as
/// start..end (end exclusive) and the length.
extension ExerciseOperation: CustomStringConvertible {
    public var description: String {
        switch self {
        case .write(let file, let offset, let length, let tag):
            return "write      f\(file) \(range(offset, UInt64(length))) tag \(tag)"
        case .read(let file, let offset, let length):
            return "read       f\(file) \(range(offset, UInt64(length)))"
        case .mapWrite(let file, let offset, let length, let tag):
            return "mapwrite   f\(file) \(range(offset, UInt64(length))) tag \(tag)"
        case .mapRead(let file, let offset, let length):
            return "mapread    f\(file) \(range(offset, UInt64(length)))"
        case .truncate(let file, let size):
            return "truncate   f\(file) to \(hex(size))"
        case .fallocate(let file, let offset, let length, let mode):
            return "fallocate  f\(file) \(range(offset, length)) \(mode.rawValue)"
        case .clone(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return "clone      " + pair(source, sourceOffset, destination, destinationOffset, length)
        case .dedupe(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return "dedupe     " + pair(source, sourceOffset, destination, destinationOffset, length)
        case .copyRange(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return "copyrange  " + pair(source, sourceOffset, destination, destinationOffset, length)
        case .seek(let file, let offset, let whence):
            return "seek       f\(file) \(hex(offset)) SEEK_\(whence.rawValue.uppercased())"
        case .extentMap(let file):
            return "map        f\(file)"
        case .fsync(let file):
            return "fsync      f\(file)"
        case .dropCache(let file):
            return "dropcache  f\(file)"
        case .reopen(let file):
            return "reopen     f\(file)"
        case .remount:
            return "remount"
        }
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

private func range(_ offset: UInt64, _ length: UInt64) -> String {
    "\(hex(offset))..\(hex(offset &+ length)) (\(length) bytes)"
}

private func pair(_ source: Int, _ sourceOffset: UInt64, _ destination: Int, _ destinationOffset: UInt64, _ length: UInt64) -> String {
    "f\(source) \(hex(sourceOffset)) -> f\(destination) \(hex(destinationOffset)) length \(length == 0 ? "0 (to EOF)" : hex(length))"
}
