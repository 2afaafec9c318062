import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// Issue 9, requirement 4, first step: a request that only reads one cached inode takes that
/// inode's own lock (Inode.fieldLock) and the inode table's, not Metadata.lock, so no
/// transaction (however long: a tree read under the lock, a big punch, a checkpoint's snapshot)
/// holds it up; and readers under the inode's lock alone see every change whole.
final class InodeLocksTests: XCTestCase {
    private final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var failures: [String] = []
        func fail(_ message: String) { lock.withLock { failures.append(message) } }
        var all: [String] { lock.withLock { failures } }
    }

    func testReadsOfACachedInodeDoNotWaitForMetadataLock() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(256 << 10, seed: 7)
        try volume.write(file, data, at: 0)
        try volume.write(file, data, at: 1 << 20)  // a hole between
        try fs.sync()
        // Half of it cached, the rest only on disk.
        XCTAssertEqual(try volume.read(file, 64 << 10, at: 0), Array(data[0..<(64 << 10)]))
        let link = try fs.symlink(parent: FileSystem.rootInode, name: Array("link".utf8), target: Array("file".utf8), owner: .root).ino
        try fs.setxattr(file, name: Array("user.note".utf8), value: Array("kept".utf8), flags: [])
        // Made in this mount, so it holds all its entries (the root, read back at mount, holds
        // only those changed since).
        let directory = try fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
        let inner = try volume.create("inner", in: directory)

        // Any transaction could be holding it: here the test holds it itself.
        fs.metadata.lock.lock()
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        Thread.detachNewThread {
            defer { done.signal() }
            do {
                if try fs.getattr(file).size != (1 << 20) + (256 << 10) { outcome.fail("getattr: wrong size") }
                var cached: [UInt8] = []
                try fs.read(file, offset: 4096, count: 8192) { cached = Array($0) }
                if cached != Array(data[4096..<12288]) { outcome.fail("cached read: wrong data") }
                var fromDisk: [UInt8] = []
                try fs.read(file, offset: 1 << 20, count: 128 << 10) { fromDisk = Array($0) }
                if fromDisk != Array(data[0..<(128 << 10)]) { outcome.fail("read from disk: wrong data") }
                if try fs.seek(file, offset: 300 << 10, to: .data) != 1 << 20 { outcome.fail("SEEK_DATA: wrong offset") }
                if try fs.readlink(link) != Array("file".utf8) { outcome.fail("readlink: wrong target") }
                if try fs.getxattr(file, name: Array("user.note".utf8)) != Array("kept".utf8) { outcome.fail("getxattr: wrong value") }
                if try fs.listxattr(file) != [Array("user.note".utf8)] { outcome.fail("listxattr: wrong names") }
                if try fs.lookup(parent: FileSystem.rootInode, name: Array("file".utf8)).ino != file { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: directory, name: Array("inner".utf8)).ino != inner { outcome.fail("lookup: wrong inode") }
                if try fs.lookup(parent: directory, name: Array("..".utf8)).ino != FileSystem.rootInode { outcome.fail("lookup ..: wrong inode") }
                do {
                    _ = try fs.lookup(parent: directory, name: Array("absent".utf8))
                    outcome.fail("lookup of an absent name succeeded")
                } catch Errno.noSuchFileOrDirectory {}
            } catch {
                outcome.fail("\(error)")
            }
        }
        let inTime = done.wait(timeout: .now() + 10) == .success
        fs.metadata.lock.unlock()
        XCTAssertTrue(inTime, "reads of a cached inode waited for Metadata.lock")
        if !inTime { XCTAssertEqual(done.wait(timeout: .now() + 30), .success) }
        XCTAssertEqual(outcome.all, [])
        // The lookup took a reference, as the kernel counts it (create took the first).
        XCTAssertEqual(fs.metadata.inodes[inner]?.lookupCount, 2)
        fs.forget(inner, count: 1)
        XCTAssertEqual(fs.metadata.inodes[inner]?.lookupCount, 1)
        try volume.unmountAndCheck()
    }

    /// Readers under the inode's lock alone while its size, block map and times change: every
    /// answer is one the file had (sizes from the set written, data from the pattern or zeros).
    func testReadersSeeChangesOfSizeAndBlockMapWhole() throws {
        let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
        let fs = volume.fs!
        let file = try volume.create("file")
        let data = pattern(512 << 10, seed: 11)
        let sizes: Set<UInt64> = [UInt64(data.count), 128 << 10, 300 << 10]
        try volume.write(file, data, at: 0)
        let stop = StopFlag()
        let outcome = Outcome()
        let group = DispatchGroup()
        for reader in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var rounds = 0
                while !stop.isSet || rounds < 50 {
                    rounds += 1
                    do {
                        let size = try fs.getattr(file).size
                        if !sizes.contains(size) { outcome.fail("reader \(reader): size \(size)") }
                        let offset = UInt64((rounds * 12_288) % data.count)
                        try fs.read(file, offset: offset, count: 16 << 10) { bytes in
                            for (index, byte) in bytes.enumerated() where byte != 0 && byte != data[Int(offset) + index] {
                                outcome.fail("reader \(reader): byte \(Int(offset) + index) is \(byte)")
                                break
                            }
                        }
                        _ = try? fs.seek(file, offset: offset, to: .hole)
                    } catch {
                        outcome.fail("reader \(reader): \(error)")
                    }
                }
            }
        }
        for round in 0..<600 {
            switch round % 3 {
            case 0: _ = try fs.setattr(file, AttributeChanges(size: 128 << 10))
            case 1: _ = try fs.setattr(file, AttributeChanges(size: 300 << 10))
            default: try volume.write(file, data, at: 0)
            }
            if round % 10 == 0 { try fs.sync() }
        }
        stop.set()
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(outcome.all, [])
        try volume.unmountAndCheck()
    }
}

/// A flag set once by one thread and read by others.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
