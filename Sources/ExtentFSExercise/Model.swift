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
            break
        case .punchHoleWithoutKeepSize:
            return .failure(.notSupported)
        case .collapseRangeKeepSize:
            // Linux 6.11 moved this check into vfs_fallocate's mode switch: EOPNOTSUPP since,
            // EINVAL before (and from the engine in-process, which follows the older kernels).
            return .failureEither(.notSupported, .invalidArgument)
        }
        return .success
    }

    /// Clone and dedupe: the checks of the kernel's generic_remap_checks as XFS applies them.
    /// Offsets block-aligned; the length too, except a tail that ends at the source's EOF when
    /// the destination range reaches the destination's EOF (dedupe shortens instead of failing).
    private mutating func remap(_ source: Int, _ sourceOffset: Int, _ destination: Int, _ destinationOffset: Int,
                                _ requested: Int, dedupe: Bool) -> Expectation {
        let sourceSize = Int(files[source].size)
        let destinationSize = Int(files[destination].size)
        guard sourceOffset % blockSize == 0, destinationOffset % blockSize == 0, sourceOffset <= sourceSize else {
            return .failure(.invalidArgument)
        }
        var length = requested == 0 ? sourceSize - sourceOffset : requested
        if dedupe {
            length = min(length, sourceSize - sourceOffset)
            if destinationOffset >= destinationSize { return .dedupe(.same(bytes: 0)) }
            length = min(length, destinationSize - destinationOffset)
        } else if sourceOffset + length > sourceSize {
            return .failure(.invalidArgument)
        }
        guard length > 0 else { return dedupe ? .dedupe(.same(bytes: 0)) : .success }
        if length % blockSize != 0 {
            let endsAtSource = sourceOffset + length == sourceSize
            let reachesDestinationEnd = destinationOffset + length >= destinationSize
            if !(endsAtSource && reachesDestinationEnd) {
                guard dedupe else { return .failure(.invalidArgument) }
                length = length / blockSize * blockSize
                guard length > 0 else { return .dedupe(.same(bytes: 0)) }
            }
        }
        if source == destination, sourceOffset < destinationOffset + length, destinationOffset < sourceOffset + length {
            return .failure(.invalidArgument)
        }
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
