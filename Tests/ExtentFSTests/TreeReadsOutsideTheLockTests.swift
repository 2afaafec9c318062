import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// A lookup, getattr, open or listxattr that must read the committed tree waits for the device
/// with no lock held (FileSystem+TreeReads.swift): while one stalls in a read, another request
/// that needs no read completes, and the stalled one then answers as it would have.
final class TreeReadsOutsideTheLockTests: XCTestCase {
    /// Stalls the first read after it is armed until released.
    private final class StallingReads: BackingStoreInterceptor, @unchecked Sendable {
        private let lock = NSCondition()
        private var armed = false
        private var stalled = false
        private var released = false

        func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {}
        func willFlush() throws {}
        func willRead(count: Int, at offset: UInt64) {
            lock.lock()
            defer { lock.unlock() }
            guard armed, !stalled else { return }
            stalled = true
            lock.broadcast()
            while !released { lock.wait() }
        }

        func arm() { lock.withLock { armed = true } }
        func release() {
            lock.lock()
            released = true
            lock.broadcast()
            lock.unlock()
        }
        func waitUntilStalled(seconds: Double) -> Bool {
            let deadline = Date(timeIntervalSinceNow: seconds)
            lock.lock()
            defer { lock.unlock() }
            while !stalled { if !lock.wait(until: deadline) { return false } }
            return true
        }
    }

    private final class Answer: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result<InodeNumber, any Error>?
        func set(_ result: Result<InodeNumber, any Error>) { lock.withLock { self.result = result } }
        func get() throws -> InodeNumber? { try lock.withLock { try result?.get() } }
    }

    func testAStalledTreeReadHoldsUpNoOtherRequest() throws {
        // The first four defer their reads; the others, which change names or emit as they read,
        // read ahead (FileSystem.readAheadOfChange, readAheadOfListing).
        for operation in ["lookup", "getattr", "open", "listxattr", "create", "mkdir", "link", "unlink", "rename", "readdir"] {
            let volume = try TestVolume(blockSize: 4096, size: 64 << 20)
            let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
            var numbers: [InodeNumber] = []
            for index in 0..<200 { numbers.append(try volume.create("f\(index)", in: directory)) }
            try volume.fs.sync()
            try volume.fs.journal.checkpoint()
            let stalling = StallingReads()
            try volume.remount(intercepting: stalling)
            let fs = volume.fs!
            let directoryAttributes = try fs.lookup(parent: FileSystem.rootInode, name: Array("d".utf8))
            stalling.arm()

            let done = DispatchSemaphore(value: 0)
            let answer = Answer()
            let target = numbers[150]
            Thread.detachNewThread {
                answer.set(Result { () throws -> InodeNumber in
                    switch operation {
                    case "lookup": return try fs.lookup(parent: directory, name: Array("f150".utf8)).ino
                    case "getattr": return try fs.getattr(target).ino
                    case "open":
                        try fs.open(target, flags: O_RDONLY)
                        fs.release(target)
                        return target
                    case "listxattr":
                        return try fs.listxattr(target).isEmpty ? target : 0
                    case "create":
                        let created = try fs.create(parent: directory, name: Array("new".utf8), mode: 0o644, flags: O_RDWR, owner: .root).ino
                        fs.release(created)
                        return try fs.lookup(parent: directory, name: Array("f150".utf8)).ino
                    case "mkdir":
                        _ = try fs.mkdir(parent: directory, name: Array("sub".utf8), mode: 0o755, owner: .root)
                        return try fs.lookup(parent: directory, name: Array("f150".utf8)).ino
                    case "link":
                        return try fs.link(target, newParent: directory, newName: Array("h150".utf8)).ino
                    case "readdir":
                        var listed: InodeNumber = 0
                        try fs.readdir(directory, after: 0, plus: true) { entry, _ in
                            if entry.name == Array("f150".utf8) { listed = entry.ino }
                            return true
                        }
                        return listed
                    case "unlink":
                        try fs.unlink(parent: directory, name: Array("f150".utf8))
                        return target
                    default:
                        try fs.rename(parent: directory, name: Array("f150".utf8), newParent: directory, newName: Array("g150".utf8), flags: [])
                        return try fs.lookup(parent: directory, name: Array("g150".utf8)).ino
                    }
                })
                done.signal()
            }
            XCTAssertTrue(stalling.waitUntilStalled(seconds: 10), "\(operation): the cold read never came")
            // Cached: answered while the other request waits for the device (on a thread of its
            // own, so that a getattr stuck behind the stalled read fails the test, not hangs it).
            let cachedDone = DispatchSemaphore(value: 0)
            let cached = Answer()
            Thread.detachNewThread {
                cached.set(Result { try fs.getattr(directory).ino })
                cachedDone.signal()
            }
            let cachedInTime = cachedDone.wait(timeout: .now() + 5) == .success
            XCTAssertTrue(cachedInTime, "\(operation): a cached getattr waited for a stalled read")
            XCTAssertEqual(done.wait(timeout: .now()), .timedOut, "\(operation): the stalled request did not wait for its read")
            stalling.release()
            if !cachedInTime { XCTAssertEqual(cachedDone.wait(timeout: .now() + 30), .success) }
            XCTAssertEqual(try cached.get(), directoryAttributes.ino)
            XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
            XCTAssertEqual(try answer.get(), target, operation)
            try volume.unmountAndCheck()
        }
    }
}
