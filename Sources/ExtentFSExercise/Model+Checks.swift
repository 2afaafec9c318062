import CExerciseSyscalls
import ExtentFS
import SystemPackage

/// Answers with more than one right value: SEEK_DATA/SEEK_HOLE (a filesystem may report a hole
/// as data) and extent maps. Each check returns nil when the answer fits the model, else why not.
extension Model {
    public func checkSeek(_ file: Int, offset: UInt64, whence: SeekWhence, result: Result<UInt64, Errno>) -> String? {
        let model = files[file]
        let size = model.size
        guard offset < size else {
            if case .failure(.noSuchAddressOrDevice) = result { return nil }
            return "offset \(hex(offset)) is at or past EOF (\(hex(size))): expected ENXIO, got \(describe(result))"
        }
        let start = Int(offset)
        switch whence {
        case .hole:
            guard case .success(let found) = result else { return "expected a hole at or after \(hex(offset)), got \(describe(result))" }
            guard found >= offset, found <= size else { return "hole at \(hex(found)) is outside [\(hex(offset)), EOF \(hex(size))]" }
            if let known = firstUnmapped(model, from: start), found > known {
                return "hole at \(hex(found)), but \(hex(known)) is a hole for sure (a punched, truncated or inserted block nothing touched since)"
            }
            // A hole reads as zeros up to its block's end.
            let holeEnd = min(Int(size), (Int(found) / blockSize + 1) * blockSize)
            if let nonzero = firstNonzero(model, Int(found), holeEnd) {
                return "hole at \(hex(found)), but the byte at \(hex(UInt64(nonzero))) is not zero"
            }
        case .data:
            switch result {
            case .failure(.noSuchAddressOrDevice):
                if let nonzero = firstNonzero(model, start, Int(size)) {
                    return "ENXIO (no data after \(hex(offset))), but the byte at \(hex(UInt64(nonzero))) is not zero"
                }
            case .failure(let errno):
                return "expected data or ENXIO, got \(errno)"
            case .success(let found):
                guard found >= offset, found < size else { return "data at \(hex(found)) is outside [\(hex(offset)), EOF \(hex(size)))" }
                if let nonzero = firstNonzero(model, start, Int(found)) {
                    return "data at \(hex(found)) skips the nonzero byte at \(hex(UInt64(nonzero)))"
                }
                if model.isUnmapped(block: Int(found) / blockSize) {
                    return "data at \(hex(found)), inside a block that is a hole for sure"
                }
            }
        }
        return nil
    }

    /// Extents sorted and disjoint; every nonzero byte inside one (a dirty page needs blocks or a
    /// reservation behind it); none over a block that is surely unmapped.
    public func checkExtentMap(_ file: Int, _ extents: [Extent]) -> String? {
        let model = files[file]
        var previousEnd: UInt64 = 0
        for (index, extent) in extents.enumerated() {
            guard extent.length > 0 else { return "extent \(index) has length 0" }
            guard extent.logical >= previousEnd else {
                return "extent \(index) at \(hex(extent.logical)) overlaps or precedes the one ending at \(hex(previousEnd))"
            }
            let firstBlock = Int(extent.logical) / blockSize
            let endBlock = Int((extent.logical + extent.length + UInt64(blockSize) - 1) / UInt64(blockSize))
            for block in firstBlock..<endBlock where model.isUnmapped(block: block) {
                return "extent \(index) \(hex(extent.logical))+\(hex(extent.length)) maps block \(block), which is a hole for sure"
            }
            if let nonzero = firstNonzero(model, Int(min(previousEnd, model.size)), Int(min(extent.logical, model.size))) {
                return "the nonzero byte at \(hex(UInt64(nonzero))) lies in no extent"
            }
            previousEnd = extent.logical + extent.length
        }
        if let nonzero = firstNonzero(model, Int(min(previousEnd, model.size)), Int(model.size)) {
            return "the nonzero byte at \(hex(UInt64(nonzero))) lies in no extent"
        }
        return nil
    }

    private func firstUnmapped(_ model: FileModel, from offset: Int) -> UInt64? {
        let size = Int(model.size)
        var block = offset / blockSize
        while block * blockSize < size {
            if model.isUnmapped(block: block) { return UInt64(max(offset, block * blockSize)) }
            block += 1
        }
        return nil
    }

    private func firstNonzero(_ model: FileModel, _ from: Int, _ to: Int) -> Int? {
        guard from < to else { return nil }
        return model.contents.withUnsafeBufferPointer { bytes in
            let found = exercise_first_nonzero(bytes.baseAddress! + from, to - from)
            return found < to - from ? from + found : nil
        }
    }

    private func describe(_ result: Result<UInt64, Errno>) -> String {
        switch result {
        case .success(let value): return hex(value)
        case .failure(let errno): return "\(errno)"
        }
    }
}
