import ExtentFS
import SystemPackage

/// What the exerciser drives: files 0..<count on a fresh extentfs volume, either the engine
/// in-process or real files under a mount. Every method throws `Errno` for what the caller would
/// see as errno; any other error means the target itself broke (a mount that went away).
public protocol ExerciseTarget: AnyObject {
    var blockSize: Int { get }

    /// Fills `buffer` from `offset`; returns how many bytes there were (short at EOF).
    func read(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func write(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws
    /// Through a shared mapping of the range (within EOF).
    func mapRead(_ file: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Extends the file by truncate when the range passes EOF, then writes through a shared
    /// mapping and msyncs.
    func mapWrite(_ file: Int, offset: UInt64, _ bytes: UnsafeRawBufferPointer) throws
    func truncate(_ file: Int, size: UInt64) throws
    func fallocate(_ file: Int, offset: UInt64, length: UInt64, mode: AllocationMode) throws
    func clone(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws
    func dedupe(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> DedupeStatus
    func copyRange(from source: Int, sourceOffset: UInt64, to destination: Int, destinationOffset: UInt64, length: UInt64) throws -> UInt64
    func seek(_ file: Int, offset: UInt64, whence: SeekWhence) throws -> UInt64
    func extentMap(_ file: Int) throws -> [Extent]
    func size(_ file: Int) throws -> UInt64
    func fsync(_ file: Int) throws
    /// Drops the kernel's clean cached pages of the file, where there is such a cache.
    func dropCache(_ file: Int) throws
    func reopen(_ file: Int) throws
    func remount() throws
    /// Unmounts and checks the volume; returns fsck's problems (empty when clean). The target
    /// is unusable afterwards.
    func finish() throws -> [String]
    /// Releases everything (image, mountpoint) without checking; safe after `finish`.
    func discard()
    /// What a failure report should add about the target (a daemon's log); empty for none.
    func diagnostics() -> String
}

extension ExerciseTarget {
    public func diagnostics() -> String { "" }
}

/// Makes a fresh target on a new volume; the runner calls it once per run and the shrinker once
/// per attempt.
public typealias TargetFactory = () throws -> ExerciseTarget

/// Why a target could not run an operation at all, as opposed to an errno the operation returned.
public struct TargetBroken: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
