/// Smaller versions of an operation, for the shrinker's second pass: once no operation can go,
/// each one tries to get shorter or rounder, so the sequence a human reads is as plain as the
/// failure allows.
extension ExerciseOperation {
    func simplifications(blockSize: Int) -> [ExerciseOperation] {
        let block = UInt64(blockSize)
        func rounder(_ value: UInt64) -> [UInt64] {
            var values: [UInt64] = []
            if value % block != 0 { values.append(value / block * block) }
            if value > 0 { values.append(0) }
            return values
        }
        func shorter(_ length: UInt64) -> [UInt64] {
            var values: [UInt64] = []
            if length > block, length % block != 0 { values.append(length / block * block) }
            if length > 1 { values.append(max(1, length / 2)) }
            return values
        }
        switch self {
        case .write(let file, let offset, let length, let tag):
            return shorter(UInt64(length)).map { .write(file: file, offset: offset, length: Int($0), tag: tag) }
                + rounder(offset).map { .write(file: file, offset: $0, length: length, tag: tag) }
        case .mapWrite(let file, let offset, let length, let tag):
            return shorter(UInt64(length)).map { .mapWrite(file: file, offset: offset, length: Int($0), tag: tag) }
                + rounder(offset).map { .mapWrite(file: file, offset: $0, length: length, tag: tag) }
        case .truncate(let file, let size):
            return rounder(size).map { .truncate(file: file, size: $0) }
        case .fallocate(let file, let offset, let length, let mode):
            return shorter(length).map { .fallocate(file: file, offset: offset, length: $0, mode: mode) }
                + rounder(offset).map { .fallocate(file: file, offset: $0, length: length, mode: mode) }
        case .clone(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return shorter(length).map { .clone(source: source, sourceOffset: sourceOffset, destination: destination,
                                                destinationOffset: destinationOffset, length: $0) }
        case .dedupe(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return shorter(length).map { .dedupe(source: source, sourceOffset: sourceOffset, destination: destination,
                                                 destinationOffset: destinationOffset, length: $0) }
        case .copyRange(let source, let sourceOffset, let destination, let destinationOffset, let length):
            return shorter(length).map { .copyRange(source: source, sourceOffset: sourceOffset, destination: destination,
                                                    destinationOffset: destinationOffset, length: $0) }
        case .read, .mapRead, .seek, .extentMap, .fsync, .dropCache, .reopen, .remount:
            return []
        }
    }
}
