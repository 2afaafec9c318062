import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// Issue 9, requirement 4: clones, dedupes and FIEMAP are transactions shared on their files, a
/// clone's raised counts under the allocator's lock. They complete while a transaction on
/// another file is held, and a count raised meanwhile never lets a write of the source land in
/// place on blocks a clone now shares.
final class RemapLocksTests: XCTestCase {
    func testClonesDedupesAndExtentMapsDoNotWaitForAnotherSharedTransaction() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let data = pattern(256 << 10, seed: 31)
        let source = try volume.create("source")
        let twin = try volume.create("twin")  // the same bytes in blocks of its own, to dedupe
        try volume.write(source, data, at: 0)
        try volume.write(twin, data, at: 0)
        let clone = try volume.create("clone")
        let copy = try volume.create("copy")
        try volume.write(source, pattern(8192, seed: 32), at: 300 << 10)  // dirty: the clone writes it back
        let sourceBytes = try volume.read(source, (300 << 10) + 8192, at: 0)
        let freeBefore = fs.statistics().freeBlocks
        let outcome = LockOutcome()
        let inTime = outcome.finishesDuringASharedTransaction(in: fs) {
            do {
                let whole = UInt64(sourceBytes.count)
                if try fs.clone(from: source, sourceOffset: 0, to: clone, destinationOffset: 0, length: whole) != whole {
                    outcome.fail("short clone")
                }
                if try fs.dedupe(from: source, sourceOffset: 0, length: UInt64(data.count), to: twin, destinationOffset: 0)
                    != .same(bytes: UInt64(data.count)) {
                    outcome.fail("dedupe of equal ranges")
                }
                // Its unaligned head and tail copied, the blocks between cloned.
                if try fs.copyFileRange(from: source, sourceOffset: 1000, to: copy, destinationOffset: 5096, length: 100_000) != 100_000 {
                    outcome.fail("short copy")
                }
                let map = try fs.extentMap(clone, offset: 0, length: whole)
                if map.isEmpty || !map.allSatisfy({ $0.flags.contains(.shared) }) { outcome.fail("FIEMAP of the clone: \(map)") }
            } catch {
                outcome.fail("\(error)")
            }
        }
        XCTAssertTrue(inTime, "a clone, a dedupe, a copy_file_range or FIEMAP waited for a shared transaction")
        XCTAssertEqual(outcome.all, [])
        try fs.sync()
        XCTAssertGreaterThanOrEqual(fs.statistics().freeBlocks, freeBefore + 60, "the twin's own blocks are free")
        try volume.remount()
        XCTAssertEqual(try volume.read(clone, sourceBytes.count, at: 0), sourceBytes)
        XCTAssertEqual(try volume.read(twin, data.count, at: 0), data)
        XCTAssertEqual(try volume.read(copy, 100_000, at: 5096), Array(sourceBytes[1000..<101_000]))
        try volume.unmountAndCheck()
    }

    /// One thread writes a source, clones it, dedupes it and writes it again, while writeback of
    /// every file runs on another and two more threads write, punch, truncate and clone within
    /// files of their own, with commits and checkpoints between: every clone holds what the source
    /// held when it was cloned (a write after it lands in blocks of the source's own), and fsck's
    /// recount of the reference counts matches.
    func testClonesRacingWritebackOfTheirSourceKeepEveryFileWhole() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let length = 256 << 10
        let source = try volume.create("source")
        let sourceModel = ExpectedBytes(pattern(length, seed: 40))
        try volume.write(source, sourceModel.bytes, at: 0)
        let targets = try (0..<4).map { try volume.create("target\($0)") }
        let targetModels = targets.map { _ in ExpectedBytes([]) }
        let twin = try volume.create("twin")
        let twinModel = ExpectedBytes([])
        let others = try (0..<2).map { try volume.create("other\($0)") }
        let otherModels = (0..<2).map { ExpectedBytes(pattern(length, seed: UInt64(50 + $0))) }
        for (file, model) in zip(others, otherModels) { try volume.write(file, model.bytes, at: 0) }
        try fs.sync()

        let outcome = LockOutcome()
        let group = DispatchGroup()
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            do {
                for round in 0..<200 {
                    let piece = pattern(12 << 10, seed: UInt64(1000 + round))
                    let offset = (round * 37 % 60) * 4096 + 700
                    try piece.withUnsafeBytes { _ = try fs.write(source, offset: UInt64(offset), $0) }
                    sourceModel.write(piece, at: offset)
                    let target = round % targets.count
                    _ = try fs.clone(from: source, sourceOffset: 0, to: targets[target], destinationOffset: 0, length: UInt64(length))
                    targetModels[target].truncate(to: 0)
                    targetModels[target].write(sourceModel.bytes, at: 0)
                    if round % 5 == 2 {
                        try sourceModel.bytes.withUnsafeBytes { _ = try fs.write(twin, offset: 0, $0) }
                        twinModel.truncate(to: 0)
                        twinModel.write(sourceModel.bytes, at: 0)
                        if try fs.dedupe(from: source, sourceOffset: 0, length: UInt64(length), to: twin, destinationOffset: 0)
                            != .same(bytes: UInt64(length)) {
                            outcome.fail("round \(round): dedupe found the twin different")
                        }
                    }
                    if round % 7 == 3, try fs.extentMap(source, offset: 0, length: UInt64(length)).isEmpty {
                        outcome.fail("round \(round): FIEMAP of the source is empty")
                    }
                    if let mismatch = targetModels[target].mismatch(try volume.read(targets[target], length, at: 0)) {
                        outcome.fail("round \(round): target \(target), just after its clone, \(mismatch)")
                    }
                }
            } catch {
                outcome.fail("source: \(error)")
            }
        }
        for (index, (file, model)) in zip(others, otherModels).enumerated() {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let data = pattern(8 << 10, seed: UInt64(60 + index))
                do {
                    for round in 0..<250 {
                        let offset = (round * 29 + index * 11) % 60 * 4096
                        try data.withUnsafeBytes { _ = try fs.write(file, offset: UInt64(offset), $0) }
                        model.write(data, at: offset)
                        switch round % 4 {
                        case 0:
                            let hole = (round * 13 % 50) * 4096 + 300
                            try fs.fallocate(file, offset: UInt64(hole), length: 10_000, mode: [.punchHole, .keepSize])
                            model.punch(hole, 10_000)
                        case 1:
                            let size = 200 << 10 + (round % 16) * 4096
                            _ = try fs.setattr(file, AttributeChanges(size: UInt64(size)))
                            model.truncate(to: size)
                        case 2:
                            // Within the file: its first 64 KiB shared at 128 KiB.
                            _ = try fs.clone(from: file, sourceOffset: 0, to: file, destinationOffset: 128 << 10, length: 64 << 10)
                            model.write(Array(model.bytes[0..<(64 << 10)]), at: 128 << 10)
                        default:
                            try fs.writeback(try fs.inode(file))
                        }
                    }
                } catch {
                    outcome.fail("other \(index): \(error)")
                }
            }
        }
        XCTAssertEqual(try outcome.syncsWhileWritingBack(fs, thenWaitsFor: group, seconds: 180), .success)
        XCTAssertEqual(outcome.all, [])
        try volume.remount()
        XCTAssertNil(sourceModel.mismatch(try volume.read(source, length, at: 0)), "the source")
        for (index, target) in targets.enumerated() {
            XCTAssertNil(targetModels[index].mismatch(try volume.read(target, length, at: 0)), "target \(index)")
        }
        XCTAssertNil(twinModel.mismatch(try volume.read(twin, length, at: 0)), "the twin")
        for (index, other) in others.enumerated() {
            let model = otherModels[index]
            XCTAssertEqual(try fs.getattr(other).size, UInt64(model.bytes.count), "other \(index)'s size")
            XCTAssertNil(model.mismatch(try volume.read(other, model.bytes.count + 1, at: 0)), "other \(index)")
        }
        XCTAssertFalse(fs.metadata.withLock { fs.metadata.referenceCounts.isEmpty }, "the targets share the source's blocks")
        try volume.unmountAndCheck()
    }
}
