import Foundation

/// A deterministic, single-threaded sequence of steps for the crash and fault tests: either a
/// script that sets up one known hazard, or a seeded random mix. `next` is asked for one step at
/// a time with the model as it stands (a random workload picks only steps that apply); nil ends
/// the workload, which then unmounts.
struct CrashWorkload: CustomStringConvertible {
    let name: String
    let seed: UInt64
    /// A fresh step source for one run at one block size.
    let makeSource: (_ blockSize: Int) -> (CrashModel) -> CrashStep?

    var description: String { "workload '\(name)' seed \(seed)" }

    static func scripted(_ name: String, _ steps: @escaping (_ blockSize: Int) -> [CrashStep]) -> CrashWorkload {
        CrashWorkload(name: name, seed: 0) { blockSize in
            var remaining = steps(blockSize)[...]
            return { _ in remaining.popFirst() }
        }
    }

    static func random(seed: UInt64, steps: Int) -> CrashWorkload {
        CrashWorkload(name: "random", seed: seed) { blockSize in
            var generator = RandomCrashSteps(seed: seed, steps: steps, blockSize: blockSize)
            return { generator.next($0) }
        }
    }
}

extension CrashWorkload {
    /// "fsync returns without flushing": an overwrite in place of fsynced data changes no
    /// mapping; once another file's commit has recorded the file's new mtime, the fsync that
    /// writes the overwrite has no metadata to commit, and must still flush.
    static let overwriteInPlaceAfterCommit = scripted("overwrite in place after another commit") { b in [
        .create(1, in: 0, name: "a", keepOpen: false),
        .write(1, offset: 0, length: 4 * b),
        .fsync(1),
        .create(2, in: 0, name: "b", keepOpen: false),
        .write(2, offset: 0, length: b),
        .write(1, offset: b, length: b + b / 2),
        .fsync(2),
        .fsync(1),
        .write(2, offset: b, length: b),
        .fdatasync(2),
        .write(1, offset: 0, length: b / 2),
        .fdatasync(1),
    ] }

    /// "Size without data": a file extended by a write and never fsynced while another file is
    /// fsynced. Its size may be committed only with the data under it.
    static let sizeWithoutData = scripted("size without data") { b in [
        .create(1, in: 0, name: "grown", keepOpen: false),
        .write(1, offset: 0, length: b + 100),
        .fsync(1),
        .create(2, in: 0, name: "other", keepOpen: false),
        .write(2, offset: 0, length: b),
        .write(1, offset: b + 100, length: 2 * b + 200),
        .fsync(2),
        .truncate(1, size: 6 * b),
        .write(2, offset: b, length: b),
        .fsync(2),
        .write(1, offset: 7 * b, length: 300),
        .sync,
    ] }

    /// "One file's data in another": A and B share blocks (clone, then copy_file_range, which
    /// shares whole blocks); both overwrite a shared block. Writeback of A copies on write, and B,
    /// now the block's only owner in memory, writes it in place: until the commit that records
    /// A's new mapping is durable, the durable metadata still maps A to that block.
    static let sharedBlockOverwrittenByBoth = scripted("shared block overwritten by both sharers") { b in [
        .create(1, in: 0, name: "a", keepOpen: false),
        .write(1, offset: 0, length: 4 * b),
        .fsync(1),
        .create(2, in: 0, name: "b", keepOpen: false),
        .clone(from: 1, sourceOffset: 0, to: 2, destinationOffset: 0, length: 4 * b),
        .fsync(2),
        .write(1, offset: b, length: b),
        .write(2, offset: b, length: b),
        .sync,
        .write(1, offset: 2 * b, length: b),
        .write(2, offset: 2 * b, length: b),
        .fsync(1),
        .fsync(2),
        .create(3, in: 0, name: "c", keepOpen: false),
        .copyRange(from: 1, sourceOffset: 0, to: 3, destinationOffset: 0, length: 4 * b),
        .fdatasync(3),
        .write(3, offset: 0, length: b / 2),
        .write(1, offset: 0, length: b),
        .sync,
        .write(3, offset: 3 * b, length: b),
        .write(1, offset: 3 * b, length: b),
        .fsync(3),
    ] }

    /// An unlinked file kept open (link count 0) is a valid crash state: fsck must not call it
    /// damage, and mount frees it.
    static let unlinkedOpenFile = scripted("unlinked open file") { b in [
        .create(1, in: 0, name: "doomed", keepOpen: true),
        .write(1, offset: 0, length: 2 * b),
        .fsync(1),
        .unlink(1),
        .write(1, offset: 2 * b, length: b),
        .create(2, in: 0, name: "other", keepOpen: false),
        .write(2, offset: 0, length: b),
        .fsync(2),
        .fsync(1),
        .close(1),
        .fsync(2),
        .create(3, in: 0, name: "doomed", keepOpen: false),
        .write(3, offset: 0, length: 100),
        .fsync(3),
    ] }

    /// Names: rename within and across directories, rename over a file, mkdir and rmdir, each
    /// made durable by fsyncdir or by fsync of the file.
    static let renamesAndDirectories = scripted("renames and directories") { b in [
        .makeDirectory(1, in: 0, name: "d1"),
        .create(2, in: 1, name: "a", keepOpen: false),
        .write(2, offset: 0, length: b),
        .fsync(2),
        .fsyncDirectory(0),
        .rename(2, to: 0, name: "b"),
        .fsyncDirectory(1),
        .fsyncDirectory(0),
        .create(3, in: 0, name: "victim", keepOpen: false),
        .write(3, offset: 0, length: 2 * b),
        .fsync(3),
        .rename(2, to: 0, name: "victim"),
        .fsync(2),
        .makeDirectory(4, in: 0, name: "d2"),
        .create(5, in: 4, name: "c", keepOpen: false),
        .fsync(5),
        .fsyncDirectory(0),
        .rename(4, to: 0, name: "d3"),
        .unlink(5),
        .removeDirectory(4),
        .fsyncDirectory(0),
        .rename(2, to: 1, name: "back"),
        .sync,
        .rename(2, to: 0, name: "out"),
        .removeDirectory(1),
        .create(6, in: 0, name: "d1", keepOpen: false),
        .fsync(6),
    ] }

    /// Truncates down and up around fdatasync and fsync, and xattrs, which fdatasync need not
    /// make durable and fsync must.
    static let truncatesAndXattrs = scripted("truncates and xattrs") { b in [
        .create(1, in: 0, name: "t", keepOpen: false),
        .write(1, offset: 0, length: 3 * b),
        .fsync(1),
        .truncate(1, size: b + 10),
        .fdatasync(1),
        .truncate(1, size: 4 * b),
        .write(1, offset: 2 * b, length: 100),
        .fsync(1),
        .setXattr(1, name: "x"),
        .setXattr(1, name: "y"),
        .fdatasync(1),
        .fsync(1),
        .removeXattr(1, name: "x"),
        .truncate(1, size: b / 2),
        .sync,
        .setXattr(1, name: "x"),
        .truncate(1, size: 0),
        .write(1, offset: b, length: b),
        .fsync(1),
    ] }

    /// Overwrites of whole blocks no page of which is cached go straight to the image
    /// (FileSystem+WriteThrough.swift): fdatasync must still flush them, a shared block must
    /// still be copied on write, and what was never synced may come back old or new.
    static let overwritesWrittenThrough = scripted("overwrites written through") { b in
        let p = max(b, 4096)
        return [
            .create(1, in: 0, name: "a", keepOpen: false),
            .write(1, offset: 0, length: 8 * p),
            .fsync(1),
            .dropCaches,
            .write(1, offset: p, length: p),
            .fdatasync(1),
            .write(1, offset: 3 * p, length: 2 * p),
            .create(2, in: 0, name: "b", keepOpen: false),
            .clone(from: 1, sourceOffset: 4 * p, to: 2, destinationOffset: 0, length: 2 * p),
            .fsync(2),
            .dropCaches,
            .write(1, offset: 4 * p, length: p),
            .write(1, offset: 6 * p, length: p),
            .fsync(1),
            .write(2, offset: p, length: p),
            .write(1, offset: 0, length: p),
            .sync,
            .dropCaches,
            .write(1, offset: 2 * p, length: p),
        ]
    }

    static let scripted: [CrashWorkload] = [
        overwriteInPlaceAfterCommit, sizeWithoutData, sharedBlockOverwrittenByBoth, unlinkedOpenFile,
        renamesAndDirectories, truncatesAndXattrs, overwritesWrittenThrough,
    ]
}

/// The seeded random mix: a few files in the root and up to three directories; appends,
/// overwrites (some of whole pages), writes past the end, truncates, clones and copies between
/// files, fsync, fdatasync, fsyncdir, sync, unlink (sometimes of an open file), rename
/// (sometimes over a file), rmdir, xattrs, dropping the caches. Files stay small (eight blocks,
/// at least 16 KiB) so that every crash point is cheap.
struct RandomCrashSteps {
    private var random: SeededGenerator
    private var remaining: Int
    private var nextID = 1
    private let blockSize: Int
    private let maxBytes: Int
    private static let fileNames = ["a", "b", "c", "d", "e", "f"]
    private static let directoryNames = ["d1", "d2", "d3"]
    /// Data words have eight bits for the file.
    private static let maxID = 250

    init(seed: UInt64, steps: Int, blockSize: Int) {
        random = SeededGenerator(seed: seed)
        remaining = steps
        self.blockSize = blockSize
        maxBytes = max(8 * blockSize, 16 << 10)
    }

    mutating func next(_ model: CrashModel) -> CrashStep? {
        while remaining > 0 {
            remaining -= 1
            if let step = pick(model) { return step }
        }
        return nil
    }

    private mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    private mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }

    private mutating func pick(_ model: CrashModel) -> CrashStep? {
        let nodes = model.nodes.values.sorted { $0.id < $1.id }
        let files = nodes.filter { !$0.isDirectory && ($0.isNamed || $0.isOpen) }
        let named = files.filter(\.isNamed)
        let directories = nodes.filter { $0.isDirectory && ($0.isNamed || $0.ino == model.root.ino) }
        let weights: [(Int, Kind)] = [
            (nextID >= Self.maxID ? 0 : files.count < 6 ? 10 : 1, .create),
            (nextID >= Self.maxID ? 0 : directories.count < 4 ? 3 : 0, .makeDirectory),
            (files.isEmpty ? 0 : 24, .write), (files.isEmpty ? 0 : 6, .truncate),
            (files.isEmpty ? 0 : 8, .fsync), (files.isEmpty ? 0 : 6, .fdatasync), (4, .fsyncDirectory), (2, .sync),
            (named.isEmpty ? 0 : 3, .unlink), (files.contains { $0.isOpen } ? 3 : 0, .close),
            (named.isEmpty ? 0 : 5, .rename), (directories.count > 1 ? 2 : 0, .removeDirectory),
            (files.count > 1 ? 4 : 0, .clone), (files.count > 1 ? 3 : 0, .copyRange),
            (files.isEmpty ? 0 : 4, .setXattr), (files.isEmpty ? 0 : 2, .removeXattr),
            (files.contains { $0.current.size >= wholePage } ? 6 : 0, .overwriteWhole), (2, .dropCaches),
        ]
        var roll = int(0...weights.reduce(0) { $0 + $1.0 } - 1)
        let kind = weights.first { weight in
            if roll < weight.0 { return true }
            roll -= weight.0
            return false
        }!.1
        func any<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        switch kind {
        case .create:
            let directory = any(directories)
            let free = Self.fileNames.filter { directory.currentEntries[$0] == nil }
            guard !free.isEmpty else { return nil }
            defer { nextID += 1 }
            return .create(nextID, in: directory.id, name: any(free), keepOpen: chance(25))
        case .makeDirectory:
            let free = Self.directoryNames.filter { model.root.currentEntries[$0] == nil }
            guard !free.isEmpty else { return nil }
            defer { nextID += 1 }
            return .makeDirectory(nextID, in: 0, name: any(free))
        case .write:
            let file = any(files)
            let size = file.current.size
            let offset: Int
            switch int(0...2) {
            case 0: offset = size
            case 1: offset = size > 0 ? int(0...size - 1) : 0
            default: offset = size + int(0...2 * blockSize)
            }
            guard offset < maxBytes else { return nil }
            let length = min(int(1...2 * blockSize), maxBytes - offset)
            return .write(file.id, offset: offset, length: length)
        case .truncate:
            let file = any(files)
            return .truncate(file.id, size: chance(60) ? int(0...file.current.size) : int(0...maxBytes))
        case .fsync: return .fsync(any(files).id)
        case .fdatasync: return .fdatasync(any(files).id)
        case .fsyncDirectory: return .fsyncDirectory(any(directories).id)
        case .sync: return .sync
        case .unlink: return .unlink(any(named).id)
        case .close: return .close(any(files.filter(\.isOpen)).id)
        case .rename:
            let file = any(named)
            let directory = any(directories)
            let name = any(Self.fileNames)
            if let existing = directory.currentEntries[name].flatMap({ model.node(ino: $0) }), existing.isDirectory { return nil }
            return .rename(file.id, to: directory.id, name: name)
        case .removeDirectory:
            let candidates = directories.filter { $0.ino != model.root.ino && $0.currentEntries.isEmpty }
            guard !candidates.isEmpty else { return nil }
            return .removeDirectory(any(candidates).id)
        case .clone:
            let source = any(files)
            let destination = any(files.filter { $0 !== source })
            let sourceBlocks = source.current.size / blockSize
            guard sourceBlocks > 0 else { return nil }
            let first = int(0...sourceBlocks - 1)
            let count = int(1...min(3, sourceBlocks - first))
            let destinationBlocks = (destination.current.size + blockSize - 1) / blockSize
            let at = int(0...destinationBlocks)
            guard (at + count) * blockSize <= maxBytes else { return nil }
            return .clone(from: source.id, sourceOffset: first * blockSize, to: destination.id, destinationOffset: at * blockSize, length: count * blockSize)
        case .copyRange:
            let source = any(files)
            let destination = any(files.filter { $0 !== source })
            guard source.current.size > 0 else { return nil }
            let from = int(0...source.current.size - 1)
            var to = int(0...destination.current.size)
            if chance(50) { to = to / blockSize * blockSize + from % blockSize }
            let length = int(1...3 * blockSize)
            guard to + length <= maxBytes else { return nil }
            return .copyRange(from: source.id, sourceOffset: from, to: destination.id, destinationOffset: to, length: length)
        case .overwriteWhole:
            // Whole pages and blocks inside the file: after a drop of the caches, written through.
            let file = any(files.filter { $0.current.size >= wholePage })
            let pages = file.current.size / wholePage
            let first = int(0...pages - 1)
            return .write(file.id, offset: first * wholePage, length: int(1...min(2, pages - first)) * wholePage)
        case .dropCaches: return .dropCaches
        case .setXattr: return .setXattr(any(files).id, name: any(["x", "y", "z"]))
        case .removeXattr:
            let file = any(files)
            guard let name = file.xattrs.last!.values.keys.sorted().first else { return nil }
            return .removeXattr(file.id, name: name)
        }
    }

    private enum Kind {
        case create, makeDirectory, write, truncate, fsync, fdatasync, fsyncDirectory, sync, unlink, close, rename
        case removeDirectory, clone, copyRange, setXattr, removeXattr, overwriteWhole, dropCaches
    }

    /// The unit a write through needs: whole pages and whole blocks.
    private var wholePage: Int { max(blockSize, 4096) }
}
