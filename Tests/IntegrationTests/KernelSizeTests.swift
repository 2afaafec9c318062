import CExerciseSyscalls
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Insert, clone and collapse change a file's size behind the kernel's back (they are ioctls);
/// the kernel's own copy of the size, by which it places O_APPEND writes and ends reads and
/// mappings, must follow each of them (ExtentFSFuse/KernelSize.swift).
final class KernelSizeTests: XCTestCase {
    /// A descriptor opened with O_APPEND before the operation appends at the file's new end, a
    /// read returns the whole file, and a mapping of it can be touched up to its last byte: after
    /// the ioctls themselves, the CLI commands and fallocate(1) through the preload library.
    func testAppendingAfterEachSizeChangeLandsAtTheNewEnd() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let preload = URL(fileURLWithPath: harness.binary).deletingLastPathComponent()
            .appendingPathComponent("libExtentFSPreload.so").path
        guard FileManager.default.fileExists(atPath: preload) else {
            return XCTFail("the preload library is not at \(preload): build it (swift build)")
        }

        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let path = volume.path("appended")
            var model = TestContent.bytes(seed: UInt64(blockSize), count: 8 * blockSize)
            try createFile(path, contents: model)
            // Both closed before the unmount.
            let file = try openFile(path, O_RDWR)
            let appender = try openFile(path, O_WRONLY | O_APPEND)

            let b = blockSize
            let steps: [(name: String, run: () throws -> Void, apply: (inout [UInt8]) -> Void)] = [
                ("insert ioctl", { try check(exercise_insert_range(file, UInt64(b), UInt64(b))) },
                 { $0.insert(contentsOf: [UInt8](repeating: 0, count: b), at: b) }),
                ("clone ioctl past the end", {
                    let end = UInt64(lseek(file, 0, SEEK_END))
                    try check(exercise_clone_range(file, file, 0, UInt64(b), end))
                 }, { $0.append(contentsOf: $0[0..<b]) }),
                ("collapse ioctl", { try check(exercise_collapse_range(file, 0, UInt64(2 * b))) },
                 { $0.removeSubrange(0..<2 * b) }),
                ("extentfs insert", { try runCommand(harness, ["insert", path, "0", "\(b)"]) },
                 { $0.insert(contentsOf: [UInt8](repeating: 0, count: b), at: 0) }),
                ("extentfs collapse", { try runCommand(harness, ["collapse", path, "\(b)", "\(b)"]) },
                 { $0.removeSubrange(b..<2 * b) }),
                ("fallocate -i (preload)", { try runTool(preload, "fallocate", ["-i", "-o", "0", "-l", "\(2 * b)", path]) },
                 { $0.insert(contentsOf: [UInt8](repeating: 0, count: 2 * b), at: 0) }),
                ("fallocate -c (preload)", { try runTool(preload, "fallocate", ["-c", "-o", "\(b)", "-l", "\(3 * b)", path]) },
                 { $0.removeSubrange(b..<4 * b) }),
            ]
            for (index, step) in steps.enumerated() {
                let context = "bs \(blockSize), \(step.name)"
                try step.run()
                step.apply(&model)
                // The append first: nothing may have asked the kernel for the size in between.
                // Whole blocks, so that the next clone past the end stays block-aligned.
                let appended = TestContent.bytes(seed: UInt64(100 + index), count: b)
                XCTAssertEqual(write(appender, appended, appended.count), appended.count, "\(context): append")
                model += appended
                XCTAssertEqual(lseek(file, 0, SEEK_END), off_t(model.count), "\(context): the kernel's size")
                let contents = try readRange(file, offset: 0, count: model.count + b, path: path)
                XCTAssertEqual(contents.count, model.count, "\(context): size after an O_APPEND write")
                XCTAssertTrue(contents == model, "\(context): contents after an O_APPEND write")
                try checkMapping(file, model, context)
            }
            try closeFile(appender)
            try closeFile(file)
            try volume.unmount()
            try volume.requireClean("bs \(blockSize)")
        }
    }

    /// While another thread writes to the file all the while, each insert, clone past the end and
    /// collapse leaves the kernel with the new size, so that an O_APPEND write lands there: the
    /// kernel drops a GETATTR answer that raced a WRITE, so nothing that depends on one may be
    /// what tells the kernel.
    func testKernelSizeFollowsUnderConcurrentWrites() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let path = volume.path("raced")
            let b = blockSize
            try createFile(path, contents: TestContent.bytes(seed: 7, count: 16 * b))
            // Both closed before the unmount.
            let file = try openFile(path, O_RDWR)
            let appender = try openFile(path, O_WRONLY | O_APPEND)
            let block = TestContent.bytes(seed: 8, count: b)

            let writer = BackgroundWriter(path: path)
            writer.start()
            var wrong: [String] = []
            for round in 0..<100 {
                // Appends a block and checks that it went to `size`.
                func appendAt(_ size: Int, after what: String) throws {
                    guard write(appender, block, b) == b else { throw SyscallError(call: "append", code: errno) }
                    let end = lseek(file, 0, SEEK_END)
                    let tail = try readRange(file, offset: size, count: 2 * b, path: path)
                    if end != size + b || tail != block {
                        wrong.append("round \(round), after \(what): appended at the wrong place (size \(end), expected \(size + b))")
                    }
                }
                try sys("ftruncate", ftruncate(file, off_t(16 * b)))
                try check(exercise_insert_range(file, 0, UInt64(b)))
                try appendAt(17 * b, after: "insert")
                try check(exercise_clone_range(file, file, UInt64(b), UInt64(b), UInt64(18 * b)))
                try appendAt(19 * b, after: "clone past the end")
                try check(exercise_collapse_range(file, 0, UInt64(3 * b)))
                try appendAt(17 * b, after: "collapse")
            }
            let writes = writer.stop()
            XCTAssertGreaterThan(writes, 100, "bs \(blockSize): the writer hardly ran")
            XCTAssertTrue(wrong.isEmpty, "bs \(blockSize): \(wrong.count) of 300 appends misplaced: \(wrong.prefix(5))")
            try closeFile(appender)
            try closeFile(file)
            try volume.unmount()
            try volume.requireClean("bs \(blockSize)")
        }
    }
}

/// Rewrites the first 4 KiB of a file through its own descriptor until stopped.
private final class BackgroundWriter: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var stopping = false
    private var writes = 0
    private let finished = DispatchSemaphore(value: 0)

    init(path: String) { self.path = path }

    func start() {
        Thread.detachNewThread { [self] in
            let fd = open(path, O_WRONLY)
            let block = [UInt8](repeating: 0x5A, count: 4096)
            while fd >= 0, !lock.withLock({ stopping }) {
                if pwrite(fd, block, block.count, 0) == block.count { lock.withLock { writes += 1 } }
            }
            if fd >= 0 { close(fd) }
            finished.signal()
        }
    }

    /// Stops the thread and returns how many writes it made.
    func stop() -> Int {
        lock.withLock { stopping = true }
        finished.wait()
        return lock.withLock { writes }
    }
}

/// The exercise shims return 0 or a negative errno.
private func check(_ result: Int32, file: StaticString = #filePath, line: UInt = #line) throws {
    guard result == 0 else { throw SyscallError(call: "extentfs ioctl", code: -result) }
}

private func runCommand(_ harness: MountHarness, _ arguments: [String]) throws {
    let result = try harness.extentfs(arguments)
    guard result.succeeded else { throw HarnessError("extentfs \(arguments.joined(separator: " ")): \(result)") }
}

/// A standard tool with the preload library, as a user runs it.
private func runTool(_ preload: String, _ tool: String, _ arguments: [String]) throws {
    let result = try ProcessRunner.run("/usr/bin/env", ["LD_PRELOAD=\(preload)", tool] + arguments, timeout: 60)
    guard result.succeeded, result.stderr.isEmpty else {
        throw HarnessError("\(tool) \(arguments.joined(separator: " ")) under the preload: \(result)")
    }
}

/// Maps the whole file and compares every byte: a kernel size below the file's would fault
/// (SIGBUS, failing the run), one above it would show bytes the file does not have.
private func checkMapping(_ fd: Int32, _ model: [UInt8], _ context: String) throws {
    var error: Int32 = 0
    guard let address = exercise_mmap_shared(fd, model.count, 0, &error) else {
        throw SyscallError(call: "mmap (\(context))", code: error)
    }
    defer { munmap(address, model.count) }
    let mapped = [UInt8](UnsafeRawBufferPointer(start: address, count: model.count))
    XCTAssertTrue(mapped == model, "\(context): the mapping differs from the file")
}
