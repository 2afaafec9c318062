/// One step of an exercise. Files are numbered 0..<files; written data is not stored but derived
/// from `tag` and the file offset (DataPattern), so a replay file of a million operations stays
/// small. Codable for replay files.
public enum ExerciseOperation: Codable, Equatable, Sendable {
    case write(file: Int, offset: UInt64, length: Int, tag: UInt32)
    case read(file: Int, offset: UInt64, length: Int)
    /// Through a MAP_SHARED mapping, then msync. A range past EOF first extends the file with a
    /// truncate, as fsx does (a mapping cannot grow a file).
    case mapWrite(file: Int, offset: UInt64, length: Int, tag: UInt32)
    /// Through a mapping; always within EOF (past it is SIGBUS).
    case mapRead(file: Int, offset: UInt64, length: Int)
    case truncate(file: Int, size: UInt64)
    case fallocate(file: Int, offset: UInt64, length: UInt64, mode: AllocationMode)
    /// Length 0 clones through the source's EOF, as FICLONE does.
    case clone(source: Int, sourceOffset: UInt64, destination: Int, destinationOffset: UInt64, length: UInt64)
    case dedupe(source: Int, sourceOffset: UInt64, destination: Int, destinationOffset: UInt64, length: UInt64)
    case copyRange(source: Int, sourceOffset: UInt64, destination: Int, destinationOffset: UInt64, length: UInt64)
    case seek(file: Int, offset: UInt64, whence: SeekWhence)
    case extentMap(file: Int)
    case fsync(file: Int)
    /// Drop the kernel's clean cached pages of the file (POSIX_FADV_DONTNEED), so that later
    /// reads come from the daemon: the kernel's copy can hide a wrong one there. Nothing
    /// in-process, where there is no second cache.
    case dropCache(file: Int)
    /// Close the file and open it again.
    case reopen(file: Int)
    /// Unmount the whole volume and mount it again.
    case remount

    /// The files whose contents or size the operation may change.
    public var changedFiles: [Int] {
        switch self {
        case .write(let file, _, _, _), .mapWrite(let file, _, _, _), .truncate(let file, _), .fallocate(let file, _, _, _):
            return [file]
        case .clone(_, _, let destination, _, _), .dedupe(_, _, let destination, _, _), .copyRange(_, _, let destination, _, _):
            return [destination]
        case .read, .mapRead, .seek, .extentMap, .fsync, .dropCache, .reopen, .remount:
            return []
        }
    }

    /// Every file the operation names.
    public var files: [Int] {
        switch self {
        case .write(let file, _, _, _), .read(let file, _, _), .mapWrite(let file, _, _, _), .mapRead(let file, _, _),
             .truncate(let file, _), .fallocate(let file, _, _, _), .seek(let file, _, _), .extentMap(let file),
             .fsync(let file), .dropCache(let file), .reopen(let file):
            return [file]
        case .clone(let source, _, let destination, _, _), .dedupe(let source, _, let destination, _, _),
             .copyRange(let source, _, let destination, _, _):
            return [source, destination]
        case .remount:
            return []
        }
    }

    /// The generator's name for this kind of operation (also what --leave-out takes).
    public var kind: OperationKind {
        switch self {
        case .write: return .write
        case .read: return .read
        case .mapWrite: return .mapWrite
        case .mapRead: return .mapRead
        case .truncate: return .truncate
        case .fallocate(_, _, _, let mode): return mode.kind
        case .clone: return .clone
        case .dedupe: return .dedupe
        case .copyRange: return .copyRange
        case .seek(_, _, .data): return .seekData
        case .seek(_, _, .hole): return .seekHole
        case .extentMap: return .extentMap
        case .fsync: return .fsync
        case .dropCache: return .dropCache
        case .reopen: return .reopen
        case .remount: return .remount
        }
    }
}

/// fallocate(2) modes, including two invalid combinations that must fail as the VFS fails them.
public enum AllocationMode: String, Codable, Sendable, CaseIterable {
    case preallocate
    case preallocateKeepSize
    case punchHole              // PUNCH_HOLE | KEEP_SIZE
    case zeroRange
    case zeroRangeKeepSize
    case collapseRange
    case insertRange
    case unshareRange
    case punchHoleWithoutKeepSize   // EOPNOTSUPP
    case collapseRangeKeepSize      // EINVAL

    /// The FALLOC_FL_* bits.
    public var flags: Int32 {
        switch self {
        case .preallocate: return 0
        case .preallocateKeepSize: return 0x01
        case .punchHole: return 0x02 | 0x01
        case .zeroRange: return 0x10
        case .zeroRangeKeepSize: return 0x10 | 0x01
        case .collapseRange: return 0x08
        case .insertRange: return 0x20
        // As the extentfs ioctl serves it: UNSHARE|KEEP_SIZE (XFS also preallocates the range).
        case .unshareRange: return 0x40 | 0x01
        case .punchHoleWithoutKeepSize: return 0x02
        case .collapseRangeKeepSize: return 0x08 | 0x01
        }
    }

    public var kind: OperationKind {
        switch self {
        case .preallocate, .preallocateKeepSize: return .preallocate
        case .punchHole: return .punch
        case .zeroRange, .zeroRangeKeepSize: return .zero
        case .collapseRange: return .collapse
        case .insertRange: return .insert
        case .unshareRange: return .unshare
        case .punchHoleWithoutKeepSize, .collapseRangeKeepSize: return .badFallocate
        }
    }
}

public enum SeekWhence: String, Codable, Sendable {
    case data
    case hole
}

/// Kinds of operation, for weights and for leaving some out.
public enum OperationKind: String, CaseIterable, Codable, Sendable {
    case write, read, mapWrite = "mapwrite", mapRead = "mapread", truncate
    case preallocate, punch, zero, collapse, insert, unshare, badFallocate = "badfallocate"
    case clone, dedupe, copyRange = "copyrange", seekData = "seekdata", seekHole = "seekhole"
    case extentMap = "map", fsync, dropCache = "dropcache", reopen, remount

    /// What reaches a mount only through the extentfs ioctls (the kernel never passes these to
    /// a FUSE filesystem as standard calls).
    public static let throughIoctls: Set<OperationKind> = [.collapse, .insert, .unshare, .clone, .dedupe, .extentMap]
}
