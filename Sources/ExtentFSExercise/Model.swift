import ExtentFS
import SystemPackage

/// What an operation should produce, by the model.
public enum Expectation: Equatable, Sendable {
    case success
    case failure(Errno)
    /// Either errno is right: where kernels differ (see `AllocationMode.collapseRangeKeepSize`).
    case failureEither(Errno, Errno)
    /// copy_file_range: this many bytes.
    case copied(UInt64)
    case dedupe(DedupeStatus)
    /// SEEK_DATA/SEEK_HOLE and extent maps have more than one right answer: the model checks
    /// what came back (Model+Checks.swift).
    case checkedByModel
}

/// The in-memory model of every file, with XFS's semantics for each operation. `apply` decides
/// what the operation should produce and, when that is success, changes the model accordingly.
public struct Model: Sendable {
    public let blockSize: Int
    public private(set) var files: [FileModel]
    /// The kernel's page size: the unit of mapped-write writeback.
    static let pageSize = 4096

    public init(blockSize: Int, files: Int) {
        self.blockSize = blockSize
        self.files = Array(repeating: FileModel(blockSize: blockSize), count: files)
    }

    public func size(_ file: Int) -> UInt64 { files[file].size }

    /// `data` holds the bytes of a write or map write (DataPattern), nil for other operations.
    public mutating func apply(_ operation: ExerciseOperation, data: UnsafeRawBufferPointer?) -> Expectation {
        switch operation {
        case .write(let file, let offset, _, _):
            files[file].write(data!, at: Int(offset))
            return .success
        case .mapWrite(let file, let offset, _, _):
            // The extension by truncate first, then the bytes through the mapping. Writeback of
            // a mapping writes whole pages (up to EOF): every block of them may be mapped now.
            files[file].growWithZeros(to: Int(offset) + data!.count)
            files[file].write(data!, at: Int(offset))
            let page = Model.pageSize
            let pagesEnd = (Int(offset) + data!.count + page - 1) / page * page
            files[file].markMapped(Int(offset) / page * page, min(pagesEnd, Int(files[file].size)))
            return .success
        case .read, .mapRead, .fsync, .dropCache, .reopen, .remount:
            return .success
        case .truncate(let file, let size):
            files[file].truncate(to: Int(size))
            return .success
        case .fallocate(let file, let offset, let length, let mode):
            return fallocate(file, Int(offset), Int(length), mode)
        case .clone(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return remap(source, Int(sourceOffset), destination, Int(destinationOffset), Int(length), dedupe: false)
        case .dedupe(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return remap(source, Int(sourceOffset), destination, Int(destinationOffset), Int(length), dedupe: true)
        case .copyRange(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return copyRange(source, Int(sourceOffset), destination, Int(destinationOffset), Int(length))
        case .seek, .extentMap:
            return .checkedByModel
        }
    }

    /// The range a map read covers: mappings end at EOF (past it is SIGBUS), so the read is
    /// clipped to the file; nil when nothing of it is inside.
    public func mapReadRange(_ file: Int, _ offset: UInt64, _ length: Int) -> (UInt64, Int)? {
        let size = files[file].size
        guard offset < size, length > 0 else { return nil }
        return (offset, Int(min(UInt64(length), size - offset)))
    }

    private mutating func fallocate(_ file: Int, _ offset: Int, _ length: Int, _ mode: AllocationMode) -> Expectation {
        guard length > 0 else { return .failure(.invalidArgument) }
        let end = offset + length
        let size = Int(files[file].size)
        let aligned = offset % blockSize == 0 && length % blockSize == 0
        switch mode {
        case .preallocate, .preallocateKeepSize:
            // Unwritten extents: holes to SEEK, but mapped, so block knowledge becomes unknown.
            if mode == .preallocate { files[file].growWithZeros(to: end) }
            files[file].markMapped(offset, end)
        case .punchHole:
            files[file].zero(offset, end)
            let firstWhole = (offset + blockSize - 1) / blockSize
            let endWhole = end / blockSize
            files[file].markMapped(offset, min(end, firstWhole * blockSize))
            files[file].markMapped(max(offset, endWhole * blockSize), end)
            files[file].markUnmapped(blocks: firstWhole, endWhole)
        case .zeroRange, .zeroRangeKeepSize:
            if mode == .zeroRange { files[file].growWithZeros(to: end) }
            files[file].zero(offset, end)
            files[file].markMapped(offset, end)
        case .collapseRange:
            guard aligned, end < size else { return .failure(.invalidArgument) }
            files[file].remove(offset, length)
        case .insertRange:
            guard aligned, offset < size else { return .failure(.invalidArgument) }
            files[file].insertHole(offset, length)
        case .unshareRange:
            // UNSHARE|KEEP_SIZE: contents and size stay; as on XFS (xfs_alloc_file_space after
            // the unshare), the whole range is preallocated, past EOF too.
            files[file].markMapped(offset, end)
        case .punchHoleWithoutKeepSize:
            return .failure(.notSupported)
        case .collapseRangeKeepSize:
            // Linux 6.11 moved this check into vfs_fallocate's mode switch: EOPNOTSUPP since,
            // EINVAL before (and from the engine in-process, which follows the older kernels).
            return .failureEither(.notSupported, .invalidArgument)
        }
        return .success
    }

    /// Clone and dedupe: the kernel's generic_remap_checks (fs/remap_range.c) as XFS applies them.
    /// Offsets block-aligned; dedupe needs both ranges inside EOF; an unaligned tail only where
    /// the source ends (and, for dedupe, the destination too); dedupe may shorten to whole blocks,
    /// clone may not; no overlap within one file.
    private mutating func remap(_ source: Int, _ sourceOffset: Int, _ destination: Int, _ destinationOffset: Int,
                                _ requested: Int, dedupe: Bool) -> Expectation {
        let sourceSize = Int(files[source].size)
        let destinationSize = Int(files[destination].size)
        let done: Expectation = dedupe ? .dedupe(.same(bytes: 0)) : .success
        var length = requested
        if length == 0 {
            guard sourceOffset <= sourceSize else { return .failure(.invalidArgument) }
            length = sourceSize - sourceOffset
            if length == 0 { return done }
        }
        guard sourceOffset % blockSize == 0, destinationOffset % blockSize == 0 else { return .failure(.invalidArgument) }
        if dedupe && (sourceOffset >= sourceSize || sourceOffset + length > sourceSize ||
                      destinationOffset >= destinationSize || destinationOffset + length > destinationSize) {
            return .failure(.invalidArgument)
        }
        guard sourceOffset < sourceSize else { return .failure(.invalidArgument) }
        length = min(length, sourceSize - sourceOffset)
        let span: Int
        if sourceOffset + length == sourceSize && (!dedupe || destinationOffset + length == destinationSize) {
            span = (sourceSize + blockSize - 1) / blockSize * blockSize - sourceOffset
        } else {
            length = length / blockSize * blockSize
            span = length
        }
        if source == destination, destinationOffset + span > sourceOffset, destinationOffset < sourceOffset + span {
            return .failure(.invalidArgument)
        }
        if length != requested && requested != 0 && !dedupe { return .failure(.invalidArgument) }
        if length % blockSize != 0, destinationOffset + length < destinationSize { return .failure(.invalidArgument) }
        guard length > 0 else { return done }
        if dedupe {
            guard files[source].bytesEqual(sourceOffset, files[destination], destinationOffset, count: length) else {
                return .dedupe(.differs)
            }
        } else {
            Array(files[source].contents[sourceOffset..<sourceOffset + length]).withUnsafeBytes {
                files[destination].write($0, at: destinationOffset)
            }
        }
        let sourceModel = files[source]
        files[destination].copyBlockKnowledge(from: sourceModel, block: sourceOffset / blockSize, to: destinationOffset / blockSize,
                                              count: (length + blockSize - 1) / blockSize)
        return dedupe ? .dedupe(.same(bytes: UInt64(length))) : .success
    }

    /// copy_file_range: min(length, source size - offset) bytes; overlap within one file is EINVAL.
    private mutating func copyRange(_ source: Int, _ sourceOffset: Int, _ destination: Int, _ destinationOffset: Int,
                                    _ requested: Int) -> Expectation {
        let sourceSize = Int(files[source].size)
        guard sourceOffset < sourceSize, requested > 0 else { return .copied(0) }
        let length = min(requested, sourceSize - sourceOffset)
        if source == destination, sourceOffset < destinationOffset + length, destinationOffset < sourceOffset + length {
            return .failure(.invalidArgument)
        }
        let bytes = Array(files[source].contents[sourceOffset..<sourceOffset + length])
        bytes.withUnsafeBytes { files[destination].write($0, at: destinationOffset) }
        return .copied(UInt64(length))
    }
}
