import ExtentFS
import ExtentFSExercise

/// The engine with a planted bug, to show the exerciser catches and shrinks one: after a punch
/// on a file, every later write to that file stores its last byte wrong. Two operations (a punch,
/// a write) are enough to fail, whatever the long run that found it.
final class FaultyTarget: ExerciseTarget {
    private let inner: EngineTarget
    private var punched: Set<Int> = []

    init(_ configuration: EngineTarget.Configuration) throws {
        inner = try EngineTarget(configuration)
    }

    var blockSize: Int { inner.blockSize }

    func write(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        guard punched.contains(file), bytes.count > 0 else { return try inner.write(file, offset: offset, bytes) }
        var corrupted = Array(bytes)
        corrupted[corrupted.count - 1] ^= 0x5A
        try corrupted.withUnsafeBytes { try inner.write(file, offset: offset, $0) }
    }

    func fallocate(_ file: Int, offset: UInt64, length: UInt64, mode: AllocationMode) throws {
        try inner.fallocate(file, offset: offset, length: length, mode: mode)
        if mode == .punchHole { punched.insert(file) }
    }

    // The rest is the engine's.
    func read(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try inner.read(file, offset: offset, into: buffer)
    }
    func mapRead(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try inner.mapRead(file, offset: offset, into: buffer)
    }
    func mapWrite(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        try inner.mapWrite(file, offset: offset, bytes)
    }
    func truncate(_ file: Int, size: UInt64) throws { try inner.truncate(file, size: size) }
    func clone(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws {
        try inner.clone(from: source, sourceOffset: sourceOffset, to: destination, destinationOffset: destinationOffset, length: length)
    }
    func dedupe(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> DedupeStatus {
        try inner.dedupe(from: source, sourceOffset: sourceOffset, to: destination, destinationOffset: destinationOffset, length: length)
    }
    func copyRange(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> UInt64 {
        try inner.copyRange(from: source, sourceOffset: sourceOffset, to: destination, destinationOffset: destinationOffset, length: length)
    }
    func seek(_ file: Int, offset: UInt64, whence: SeekWhence) throws -> UInt64 { try inner.seek(file, offset: offset, whence: whence) }
    func extentMap(_ file: Int) throws -> [Extent] { try inner.extentMap(file) }
    func size(_ file: Int) throws -> UInt64 { try inner.size(file) }
    func fsync(_ file: Int) throws { try inner.fsync(file) }
    func dropCache(_ file: Int) throws { try inner.dropCache(file) }
    func reopen(_ file: Int) throws { try inner.reopen(file) }
    func remount() throws { try inner.remount() }
    func finish() throws -> [String] { try inner.finish() }
    func discard() { inner.discard() }
}
