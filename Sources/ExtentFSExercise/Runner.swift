import ExtentFS
import SystemPackage

/// Applies operations to a target and to the model and checks after each one: the outcome
/// (errno, count, dedupe status), the size of every file it named, and the bytes of the range it
/// touched (from the block before it to the block after). Every `fullCheckInterval` operations,
/// after a reopen or remount and at the end, whole files are compared; the end also remounts
/// once more and runs fsck.
public final class Runner {
    public let target: ExerciseTarget
    public private(set) var model: Model
    public var fullCheckInterval: Int
    private var steps = 0
    /// Per kind of operation: how often it succeeded and how often it failed as expected (an
    /// errno, a differing dedupe, ENXIO from a seek), to show what a run really exercised.
    public private(set) var statistics: [OperationKind: (succeeded: Int, refused: Int)] = [:]
    private var dataBuffer: UnsafeMutableRawBufferPointer
    private var readBuffer: UnsafeMutableRawBufferPointer
    private static let compareChunk = 1 << 20

    public init(target: ExerciseTarget, files: Int, fullCheckInterval: Int = 128) {
        self.target = target
        self.fullCheckInterval = fullCheckInterval
        model = Model(blockSize: target.blockSize, files: files)
        dataBuffer = .allocate(byteCount: Self.compareChunk, alignment: 4096)
        readBuffer = .allocate(byteCount: Self.compareChunk, alignment: 4096)
    }

    deinit {
        dataBuffer.deallocate()
        readBuffer.deallocate()
    }

    /// Runs one operation and its checks; throws the failure if anything is wrong.
    public func step(_ operation: ExerciseOperation, index: Int) throws {
        let oldSizes = model.files.map(\.size)
        var data: UnsafeRawBufferPointer?
        if case .write(_, let offset, let length, let tag) = operation {
            data = pattern(length, offset, tag)
        } else if case .mapWrite(_, let offset, let length, let tag) = operation {
            data = pattern(length, offset, tag)
        }
        let expected = model.apply(operation, data: data)
        let observed = observe { try perform(operation, data: data) }
        try judge(operation, index: index, expected: expected, observed: observed)
        count(operation, observed)

        for file in Set(operation.files) {
            try checkSize(file, index: index, operation: operation)
        }
        for file in operation.changedFiles {
            let range = touchedRange(operation, old: oldSizes[file], new: model.size(file))
            try compare(file, range, index: index, operation: operation)
        }
        steps += 1
        switch operation {
        case .remount:
            try checkEverything(index: index, operation: operation)
        case .reopen(let file), .dropCache(let file):
            try compare(file, 0..<model.size(file), index: index, operation: operation)
        default:
            if steps % fullCheckInterval == 0 { try checkEverything(index: index, operation: operation) }
        }
    }

    /// After the last operation: whole files, a remount, whole files again, unmount and fsck.
    public func finish(index: Int) throws {
        let failure = { (kind: ExerciseFailure.Kind, message: String) in
            ExerciseFailure(index: index, operation: nil, kind: kind, message: message)
        }
        do {
            try checkEverything(index: index, operation: nil)
            try target.remount()
            try checkEverything(index: index, operation: nil)
            let problems = try target.finish()
            if !problems.isEmpty { throw failure(.fsck, problems.joined(separator: "\n")) }
        } catch let error as ExerciseFailure {
            throw error
        } catch {
            throw failure(.targetBroken, "\(error)")
        }
    }

    // MARK: Running

    private enum Observed {
        case success
        case failure(Errno)
        case copied(UInt64)
        case dedupe(DedupeStatus)
        case position(UInt64)
        case extents([Extent])
        case readBytes(Int)
        /// Not an errno: the target itself broke.
        case broken(String)
    }

    private func observe(_ body: () throws -> Observed) -> Observed {
        do {
            return try body()
        } catch let errno as Errno {
            return .failure(errno)
        } catch {
            return .broken("\(error)")
        }
    }

    private func pattern(_ length: Int, _ offset: UInt64, _ tag: UInt32) -> UnsafeRawBufferPointer {
        ensureCapacity(length)
        let slice = UnsafeMutableRawBufferPointer(rebasing: dataBuffer[0..<length])
        DataPattern.fill(slice, fileOffset: offset, tag: tag)
        return UnsafeRawBufferPointer(slice)
    }

    private func ensureCapacity(_ count: Int) {
        guard count > dataBuffer.count else { return }
        dataBuffer.deallocate()
        readBuffer.deallocate()
        dataBuffer = .allocate(byteCount: count, alignment: 4096)
        readBuffer = .allocate(byteCount: count, alignment: 4096)
    }

    private func perform(_ operation: ExerciseOperation, data: UnsafeRawBufferPointer?) throws -> Observed {
        switch operation {
        case .write(let file, let offset, _, _):
            try target.write(file, offset: offset, data!)
        case .mapWrite(let file, let offset, _, _):
            try target.mapWrite(file, offset: offset, data!)
        case .read(let file, let offset, let length):
            ensureCapacity(length)
            return .readBytes(try target.read(file, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<length])))
        case .mapRead(let file, let offset, let length):
            // Clipped to EOF by the model: a shrunk sequence may leave the file shorter than
            // when the operation was generated, and a mapping past EOF is SIGBUS.
            guard let (start, count) = model.mapReadRange(file, offset, length) else { return .readBytes(0) }
            ensureCapacity(count)
            try target.mapRead(file, offset: start, into: UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<count]))
            return .readBytes(count)
        case .truncate(let file, let size):
            try target.truncate(file, size: size)
        case .fallocate(let file, let offset, let length, let mode):
            try target.fallocate(file, offset: offset, length: length, mode: mode)
        case .clone(let source, let sourceOffset, let destination, let destinationOffset, let length):
            try target.clone(from: source, sourceOffset: sourceOffset, to: destination, destinationOffset: destinationOffset, length: length)
        case .dedupe(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return .dedupe(try target.dedupe(from: source, sourceOffset: sourceOffset, to: destination,
                                             destinationOffset: destinationOffset, length: length))
        case .copyRange(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return .copied(try target.copyRange(from: source, sourceOffset: sourceOffset, to: destination,
                                                destinationOffset: destinationOffset, length: length))
        case .seek(let file, let offset, let whence):
            return .position(try target.seek(file, offset: offset, whence: whence))
        case .extentMap(let file):
            return .extents(try target.extentMap(file))
        case .fsync(let file):
            try target.fsync(file)
        case .dropCache(let file):
            try target.dropCache(file)
        case .reopen(let file):
            try target.reopen(file)
        case .remount:
            try target.remount()
        }
        return .success
    }

    private func count(_ operation: ExerciseOperation, _ observed: Observed) {
        var entry = statistics[operation.kind] ?? (0, 0)
        switch observed {
        case .failure, .dedupe(.differs), .dedupe(.same(bytes: 0)), .copied(0): entry.refused += 1
        default: entry.succeeded += 1
        }
        statistics[operation.kind] = entry
    }

    // MARK: Judging

    private func judge(_ operation: ExerciseOperation, index: Int, expected: Expectation, observed: Observed) throws {
        func fail(_ kind: ExerciseFailure.Kind, _ message: String) -> ExerciseFailure {
            ExerciseFailure(index: index, operation: operation, kind: kind, message: message)
        }
        if case .broken(let why) = observed { throw fail(.targetBroken, why) }
        if case .failure(let errno) = observed, !expected.allows(errno),
           let why = Unsupported.explain(operation, errno) {
            throw fail(.unsupported, why)
        }
        switch (operation, observed) {
        case (.seek(let file, let offset, let whence), .position(let found)):
            if let why = model.checkSeek(file, offset: offset, whence: whence, result: .success(found)) { throw fail(.seek, why) }
            return
        case (.seek(let file, let offset, let whence), .failure(let errno)):
            if let why = model.checkSeek(file, offset: offset, whence: whence, result: .failure(errno)) { throw fail(.seek, why) }
            return
        case (.extentMap(let file), .extents(let extents)):
            if let why = model.checkExtentMap(file, extents) { throw fail(.extentMap, why + "\nextents: \(describe(extents))") }
            return
        case (.read(let file, let offset, let length), .readBytes(let count)):
            let end = min(offset + UInt64(length), max(offset, model.size(file)))
            guard count == Int(end - offset) else { throw fail(.size, "read returned \(count) bytes, expected \(end - offset)") }
            try compareRead(file, offset, count, index: index, operation: operation)
            return
        case (.mapRead(let file, _, let length), .readBytes(let count)):
            if let (start, _) = model.mapReadRange(file, operation.mapReadOffset, length) {
                try compareRead(file, start, count, index: index, operation: operation)
            }
            return
        default:
            break
        }
        let matches: Bool
        switch (expected, observed) {
        case (.success, .success): matches = true
        case (.failure, .failure(let got)), (.failureEither, .failure(let got)): matches = expected.allows(got)
        case (.copied(let want), .copied(let got)): matches = want == got
        case (.dedupe(let want), .dedupe(let got)): matches = want == got
        default: matches = false
        }
        if !matches { throw fail(.wrongOutcome, "expected \(describe(expected)), got \(describe(observed))") }
    }

    private func describe(_ expectation: Expectation) -> String {
        switch expectation {
        case .success: return "success"
        case .failure(let errno): return "\(errno) (errno \(errno.rawValue))"
        case .failureEither(let one, let other): return "\(one) (errno \(one.rawValue)) or \(other) (errno \(other.rawValue))"
        case .copied(let count): return "\(count) bytes copied"
        case .dedupe(let status): return "dedupe \(status)"
        case .checkedByModel: return "an answer the model accepts"
        }
    }

    private func describe(_ observed: Observed) -> String {
        switch observed {
        case .success: return "success"
        case .failure(let errno): return "\(errno) (errno \(errno.rawValue))"
        case .copied(let count): return "\(count) bytes copied"
        case .dedupe(let status): return "dedupe \(status)"
        case .position(let offset): return "offset \(hex(offset))"
        case .extents(let extents): return describe(extents)
        case .readBytes(let count): return "\(count) bytes read"
        case .broken(let why): return why
        }
    }

    private func describe(_ extents: [Extent]) -> String {
        extents.map { "[\(hex($0.logical))+\(hex($0.length)) -> \(hex($0.physical)) flags \($0.flags)]" }.joined(separator: " ")
    }

    // MARK: Checking

    private func checkSize(_ file: Int, index: Int, operation: ExerciseOperation?) throws {
        let size: UInt64
        do {
            size = try target.size(file)
        } catch {
            throw ExerciseFailure(index: index, operation: operation, kind: .targetBroken, message: "size of f\(file): \(error)")
        }
        guard size == model.size(file) else {
            throw ExerciseFailure(index: index, operation: operation, kind: .size,
                                  message: "f\(file) is \(size) bytes (\(hex(size))), expected \(model.size(file)) (\(hex(model.size(file))))")
        }
    }

    private func checkEverything(index: Int, operation: ExerciseOperation?) throws {
        for file in 0..<model.files.count {
            try checkSize(file, index: index, operation: operation)
            try compare(file, 0..<model.size(file), index: index, operation: operation)
        }
    }

    /// The bytes an operation may have changed, widened to whole blocks and pages on both sides
    /// (a read-modify-write gone wrong spoils its neighbours), within the new EOF.
    private func touchedRange(_ operation: ExerciseOperation, old: UInt64, new: UInt64) -> Range<UInt64> {
        var low: UInt64
        var high: UInt64
        switch operation {
        case .write(_, let offset, let length, _), .mapWrite(_, let offset, let length, _):
            (low, high) = (offset, offset + UInt64(length))
        case .fallocate(_, let offset, _, .collapseRange), .fallocate(_, let offset, _, .insertRange):
            (low, high) = (offset, max(old, new))
        case .fallocate(_, let offset, let length, _):
            (low, high) = (offset, offset + length)
        case .clone(_, _, _, let offset, let length), .dedupe(_, _, _, let offset, let length), .copyRange(_, _, _, let offset, let length):
            (low, high) = (offset, length == 0 ? max(old, new) : offset &+ length)
        default:
            (low, high) = (min(old, new), max(old, new))
        }
        if old != new {
            low = min(low, old, new)
            high = max(high, old, new)
        }
        let unit = UInt64(max(target.blockSize, 4096))
        low = low / unit * unit
        high = min(new, high > UInt64.max - unit ? UInt64.max : (high + unit - 1) / unit * unit)
        return low < high ? low..<high : 0..<0
    }

    /// What a read returned (in readBuffer) against the model.
    private func compareRead(_ file: Int, _ offset: UInt64, _ count: Int, index: Int, operation: ExerciseOperation) throws {
        let actual = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
        if let why = Mismatch.describe(expected: model.files[file].contents, at: Int(offset), actual: actual) {
            throw ExerciseFailure(index: index, operation: operation, kind: .contents, message: "f\(file): " + why)
        }
    }

    /// Reads [range) from the target in chunks and compares with the model.
    private func compare(_ file: Int, _ range: Range<UInt64>, index: Int, operation: ExerciseOperation?) throws {
        var offset = range.lowerBound
        while offset < range.upperBound {
            let count = Int(min(UInt64(readBuffer.count), range.upperBound - offset))
            let buffer = UnsafeMutableRawBufferPointer(rebasing: readBuffer[0..<count])
            let got: Int
            do {
                got = try target.read(file, offset: offset, into: buffer)
            } catch {
                throw ExerciseFailure(index: index, operation: operation, kind: .targetBroken,
                                      message: "reading back f\(file) at \(hex(offset)): \(error)")
            }
            guard got == count else {
                throw ExerciseFailure(index: index, operation: operation, kind: .size,
                                      message: "reading back f\(file) at \(hex(offset)) returned \(got) bytes, expected \(count)")
            }
            if let why = Mismatch.describe(expected: model.files[file].contents, at: Int(offset), actual: UnsafeRawBufferPointer(buffer)) {
                throw ExerciseFailure(index: index, operation: operation, kind: .contents, message: "f\(file): " + why)
            }
            offset += UInt64(count)
        }
    }
}

private extension Expectation {
    func allows(_ errno: Errno) -> Bool {
        switch self {
        case .failure(let expected): return errno == expected
        case .failureEither(let one, let other): return errno == one || errno == other
        default: return false
        }
    }
}

private extension ExerciseOperation {
    var mapReadOffset: UInt64 {
        if case .mapRead(_, let offset, _) = self { return offset }
        return 0
    }
}
