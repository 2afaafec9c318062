/// Random operations, seeded. Ranges lean towards what finds bugs: block- and page-aligned
/// offsets, ranges straddling EOF and block edges, mostly valid collapse/insert/clone (plus some
/// invalid ones that must fail with EINVAL), dedupes over ranges that were cloned or copied (so
/// that many of them match). File sizes stay under `maxFileBytes`, so that checks stay cheap.
public struct Generator {
    public struct Settings: Sendable {
        public var files: Int
        public var blockSize: Int
        public var maxFileBytes = 2 << 20
        /// The longest write, read or range operation.
        public var maxLength = 256 << 10
        public var weights: [OperationKind: Double] = Generator.defaultWeights
        public init(files: Int, blockSize: Int) {
            self.files = files
            self.blockSize = blockSize
        }

        public mutating func leaveOut(_ kinds: some Sequence<OperationKind>) {
            for kind in kinds { weights[kind] = 0 }
        }
    }

    public static let defaultWeights: [OperationKind: Double] = [
        .write: 20, .read: 10, .mapWrite: 5, .mapRead: 5, .truncate: 5,
        .preallocate: 4, .punch: 5, .zero: 5, .collapse: 4, .insert: 4, .unshare: 3, .badFallocate: 0.5,
        .clone: 5, .dedupe: 4, .copyRange: 5, .seekData: 4, .seekHole: 4, .extentMap: 2,
        .fsync: 1.5, .dropCache: 2, .reopen: 1, .remount: 0.1,
    ]

    private let settings: Settings
    private var random: SeededRandom
    private let kinds: [OperationKind]
    private let cumulativeWeights: [Double]
    /// Recent clone and copy ranges: dedupe picks among them, so that it often finds equal data.
    private var copies: [(source: Int, sourceOffset: UInt64, destination: Int, destinationOffset: UInt64, length: UInt64)] = []
    private var nextTag: UInt32

    public init(settings: Settings, seed: UInt64) {
        self.settings = settings
        random = SeededRandom(seed: seed)
        kinds = OperationKind.allCases.filter { settings.weights[$0, default: 0] > 0 }
        var total = 0.0
        cumulativeWeights = kinds.map { total += settings.weights[$0]!; return total }
        nextTag = UInt32(truncatingIfNeeded: seed) | 1
    }

    public mutating func next(_ model: Model) -> ExerciseOperation {
        let pick = Double.random(in: 0..<cumulativeWeights.last!, using: &random)
        let kind = kinds[cumulativeWeights.firstIndex { pick < $0 } ?? kinds.count - 1]
        let file = random.below(settings.files)
        let size = model.size(file)
        switch kind {
        case .write:
            let (offset, length) = extendingRange(size)
            return .write(file: file, offset: offset, length: length, tag: tag())
        case .read:
            return .read(file: file, offset: offset(below: size + UInt64(settings.blockSize)), length: length(atMost: settings.maxLength))
        case .mapWrite:
            let (offset, length) = extendingRange(size)
            return .mapWrite(file: file, offset: offset, length: length, tag: tag())
        case .mapRead:
            let offset = self.offset(below: size)
            return .mapRead(file: file, offset: offset, length: length(atMost: Int(size - min(offset, size))))
        case .truncate:
            return .truncate(file: file, size: newSize(size))
        case .preallocate:
            return fallocate(file, size, random.chance(0.5) ? .preallocate : .preallocateKeepSize)
        case .punch:
            return fallocate(file, size, .punchHole)
        case .zero:
            return fallocate(file, size, random.chance(0.5) ? .zeroRange : .zeroRangeKeepSize)
        case .unshare:
            return fallocate(file, size, .unshareRange)
        case .badFallocate:
            return fallocate(file, size, random.chance(0.5) ? .punchHoleWithoutKeepSize : .collapseRangeKeepSize)
        case .collapse:
            return collapse(file, size)
        case .insert:
            return insert(file, size)
        case .clone:
            return clone(model)
        case .dedupe:
            return dedupe(model)
        case .copyRange:
            return copyRange(model)
        case .seekData, .seekHole:
            return .seek(file: file, offset: offset(below: size + UInt64(settings.blockSize)), whence: kind == .seekData ? .data : .hole)
        case .extentMap:
            return .extentMap(file: file)
        case .fsync:
            return .fsync(file: file)
        case .dropCache:
            return .dropCache(file: file)
        case .reopen:
            return .reopen(file: file)
        case .remount:
            return .remount
        }
    }

    // MARK: Ranges

    private var blockSize: UInt64 { UInt64(settings.blockSize) }
    private var maxFile: UInt64 { UInt64(settings.maxFileBytes) }

    private mutating func tag() -> UInt32 {
        nextTag &+= 0x9E37_79B9
        return nextTag
    }

    /// An offset below `bound` (0 when bound is 0): block-aligned, page-aligned or anywhere.
    private mutating func offset(below bound: UInt64) -> UInt64 {
        guard bound > 0 else { return 0 }
        let value = UInt64.random(in: 0..<bound, using: &random)
        switch random.below(10) {
        case 0..<4: return value / blockSize * blockSize
        case 4..<5: return value / 4096 * 4096
        default: return value
        }
    }

    /// A length in 1...limit: small, medium or large; often whole blocks.
    private mutating func length(atMost limit: Int) -> Int {
        guard limit > 1 else { return max(limit, 0) }
        let scale = [512, 16 << 10, settings.maxLength][random.below(3)]
        var value = Int.random(in: 1...max(1, min(limit, scale)), using: &random)
        if random.chance(0.4), value >= settings.blockSize { value = value / settings.blockSize * settings.blockSize }
        return value
    }

    /// For operations that may grow the file: start within EOF plus a little, end within the cap.
    private mutating func extendingRange(_ size: UInt64) -> (UInt64, Int) {
        let offset = self.offset(below: min(size + 4 * blockSize + 1, maxFile - 1))
        return (offset, length(atMost: Int(maxFile - offset)))
    }

    private mutating func newSize(_ size: UInt64) -> UInt64 {
        if random.chance(0.5) { return offset(below: size + 1) }
        return min(maxFile, size + UInt64(length(atMost: settings.maxLength)))
    }

    private mutating func fallocate(_ file: Int, _ size: UInt64, _ mode: AllocationMode) -> ExerciseOperation {
        let (offset, length) = extendingRange(size)
        return .fallocate(file: file, offset: offset, length: UInt64(length), mode: mode)
    }

    /// Mostly valid: aligned, ending before EOF. Else something XFS refuses with EINVAL.
    private mutating func collapse(_ file: Int, _ size: UInt64) -> ExerciseOperation {
        let blocks = size / blockSize
        if random.chance(0.85), size > blockSize, (size - 1) / blockSize >= 1 {
            let first = UInt64.random(in: 0..<(size - 1) / blockSize, using: &random)
            let room = (size - 1) / blockSize - first
            let count = UInt64.random(in: 1...min(room, max(1, UInt64(settings.maxLength) / blockSize)), using: &random)
            return .fallocate(file: file, offset: first * blockSize, length: count * blockSize, mode: .collapseRange)
        }
        return invalidShift(file, size, blocks, .collapseRange)
    }

    /// Mostly valid: aligned, at an offset within EOF, staying under the cap.
    private mutating func insert(_ file: Int, _ size: UInt64) -> ExerciseOperation {
        let blocks = size / blockSize
        let room = (maxFile - min(size, maxFile)) / blockSize
        if random.chance(0.85), size > 0, room >= 1 {
            let first = UInt64.random(in: 0...(size - 1) / blockSize, using: &random)
            let count = UInt64.random(in: 1...min(room, max(1, UInt64(settings.maxLength) / blockSize)), using: &random)
            return .fallocate(file: file, offset: first * blockSize, length: count * blockSize, mode: .insertRange)
        }
        return invalidShift(file, size, blocks, .insertRange)
    }

    private mutating func invalidShift(_ file: Int, _ size: UInt64, _ blocks: UInt64, _ mode: AllocationMode) -> ExerciseOperation {
        switch random.below(3) {
        case 0:  // misaligned offset
            return .fallocate(file: file, offset: offset(below: size + 1) | 1, length: blockSize, mode: mode)
        case 1:  // misaligned length
            return .fallocate(file: file, offset: 0, length: blockSize + 1 + UInt64(random.below(settings.blockSize - 1)), mode: mode)
        default: // at or past EOF (collapse: reaching EOF)
            let at = (blocks + UInt64(random.below(2))) * blockSize
            return mode == .collapseRange
                ? .fallocate(file: file, offset: 0, length: max(blockSize, (size + blockSize - 1) / blockSize * blockSize), mode: mode)
                : .fallocate(file: file, offset: at, length: blockSize, mode: mode)
        }
    }

    // MARK: Two-file operations

    /// Mostly valid clones: aligned source within EOF, either whole blocks or through the
    /// source's EOF (length 0 sometimes); the destination anywhere up to a little past its EOF.
    private mutating func clone(_ model: Model) -> ExerciseOperation {
        let source = random.below(settings.files)
        let destination = random.below(settings.files)
        let sourceSize = model.size(source)
        let destinationSize = model.size(destination)
        var sourceOffset = offset(below: sourceSize + 1) / blockSize * blockSize
        var destinationOffset = offset(below: min(destinationSize + 4 * blockSize, maxFile)) / blockSize * blockSize
        var length: UInt64
        if random.chance(0.3) {
            length = sourceSize - min(sourceOffset, sourceSize)
            if random.chance(0.2) { length = 0 }
            if random.chance(0.5) { destinationOffset = destinationSize / blockSize * blockSize + blockSize * UInt64(random.below(2)) }
        } else {
            let whole = (sourceSize - min(sourceOffset, sourceSize)) / blockSize
            length = UInt64(random.below(Int(min(whole, UInt64(settings.maxLength) / blockSize)) + 1)) * blockSize
            if length == 0 { length = blockSize }
        }
        if random.chance(0.1) {  // something invalid: unaligned
            if random.chance(0.5) { sourceOffset += 1 } else { destinationOffset += UInt64(1 + random.below(settings.blockSize - 1)) }
        }
        let reach = length == 0 ? sourceSize - min(sourceOffset, sourceSize) : length
        if destinationOffset + reach > maxFile { destinationOffset = 0 }
        remember(source, sourceOffset, destination, destinationOffset, reach)
        return .clone(source: source, sourceOffset: sourceOffset, destination: destination, destinationOffset: destinationOffset, length: length)
    }

    /// Mostly over a range that was cloned or copied and still holds equal bytes (the block-aligned
    /// part of it), so that many dedupes share blocks; else anywhere aligned (usually differing).
    private mutating func dedupe(_ model: Model) -> ExerciseOperation {
        if random.chance(0.7), let equal = equalRange(model) {
            return .dedupe(source: equal.source, sourceOffset: equal.sourceOffset, destination: equal.destination,
                           destinationOffset: equal.destinationOffset, length: equal.length)
        }
        let source = random.below(settings.files)
        let destination = random.below(settings.files)
        let sourceOffset = offset(below: model.size(source) + 1) / blockSize * blockSize
        let destinationOffset = offset(below: model.size(destination) + 1) / blockSize * blockSize
        return .dedupe(source: source, sourceOffset: sourceOffset, destination: destination, destinationOffset: destinationOffset,
                       length: UInt64(length(atMost: settings.maxLength)))
    }

    /// The newest remembered copy whose block-aligned part still matches in the model; its
    /// length reaches the source's EOF sometimes, to cover the unaligned tail case.
    private func equalRange(_ model: Model) -> (source: Int, sourceOffset: UInt64, destination: Int, destinationOffset: UInt64, length: UInt64)? {
        for copy in copies.reversed() {
            let skip = (blockSize - copy.sourceOffset % blockSize) % blockSize
            guard copy.length > skip, (copy.destinationOffset + skip) % blockSize == 0 else { continue }
            let sourceOffset = copy.sourceOffset + skip
            let destinationOffset = copy.destinationOffset + skip
            let sourceSize = model.size(copy.source)
            let destinationSize = model.size(copy.destination)
            guard sourceOffset < sourceSize, destinationOffset < destinationSize else { continue }
            let length = min(copy.length - skip, sourceSize - sourceOffset, destinationSize - destinationOffset)
            if model.files[copy.source].bytesEqual(Int(sourceOffset), model.files[copy.destination], Int(destinationOffset),
                                                   count: Int(length)) { return (copy.source, sourceOffset, copy.destination, destinationOffset, length) }
        }
        return nil
    }

    /// Anywhere; often offsets at the same place within a block, where extentfs shares blocks.
    private mutating func copyRange(_ model: Model) -> ExerciseOperation {
        let source = random.below(settings.files)
        let destination = random.below(settings.files)
        let sourceOffset = offset(below: model.size(source) + blockSize)
        var destinationOffset = offset(below: min(model.size(destination) + 4 * blockSize, maxFile - 1))
        if random.chance(0.5) { destinationOffset = destinationOffset / blockSize * blockSize + sourceOffset % blockSize }
        let length = UInt64(self.length(atMost: Int(maxFile - min(destinationOffset, maxFile - 1))))
        remember(source, sourceOffset, destination, destinationOffset, length)
        return .copyRange(source: source, sourceOffset: sourceOffset, destination: destination, destinationOffset: destinationOffset, length: length)
    }

    private mutating func remember(_ source: Int, _ sourceOffset: UInt64, _ destination: Int, _ destinationOffset: UInt64, _ length: UInt64) {
        copies.append((source, sourceOffset, destination, destinationOffset, length))
        if copies.count > 16 { copies.removeFirst() }
    }
}
