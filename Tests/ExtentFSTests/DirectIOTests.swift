import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import ExtentFS

/// File data goes past the host's page cache (DirectIO): page fills and writeback runs of 64 KiB
/// or more. Either way a transfer sees every one that returned before it, buffered or direct;
/// what is short or not aligned for direct I/O goes buffered.
final class DirectIOTests: XCTestCase {
    private func imageStore(writable: Bool = true) throws -> (BackingStore, DirectIO, String) {
        var template = Array("/var/tmp/extentfs-direct-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let image = directory + "/disk.img"
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: nil))
        XCTAssertEqual(truncate(image, 1 << 20), 0)
        let store = try BackingStore(path: image, writable: writable)
        let direct = try XCTUnwrap((store.backend as? FileStore)?.direct,
                                   "the host refused O_DIRECT on \(directory): direct I/O is not tested")
        return (store, direct, directory)
    }

    func testADirectReadSeesWritesStillInTheHostCache() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = pattern(DirectIO.minimumBytes, seed: 9)
        // Twice over the same range: the second write is dirty in the host cache when read.
        try store.write(Array(repeating: 1, count: data.count), at: 8192)
        try store.flush()
        try store.write(data, at: 8192)

        let memory = PageMemory(Array(repeating: 0, count: data.count))
        XCTAssertTrue(try direct.read(vectors: memory.vectors, at: 8192), "an aligned long read went buffered")
        XCTAssertTrue(memory.bytes == data)
        XCTAssertTrue(direct.isActive)

        // Through the store, as a page fill reads.
        memory.memory.initializeMemory(as: UInt8.self, repeating: 0, count: data.count)
        try store.read(vectors: memory.vectors, at: 8192)
        XCTAssertTrue(memory.bytes == data)
    }

    func testShortAndUnalignedReadsGoBuffered() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = pattern(DirectIO.minimumBytes + 3000, seed: 4)
        try store.write(data, at: 1024)
        let memory = PageMemory(Array(repeating: 0, count: DirectIO.minimumBytes + Page.size))
        // Short, then offset, length and memory each off the alignment in turn.
        XCTAssertFalse(try direct.read(vectors: [iovec(iov_base: memory.memory, iov_len: DirectIO.minimumBytes - Page.size)], at: 0))
        XCTAssertFalse(try direct.read(vectors: [iovec(iov_base: memory.memory, iov_len: DirectIO.minimumBytes)], at: 1024))
        XCTAssertFalse(try direct.read(vectors: [iovec(iov_base: memory.memory, iov_len: DirectIO.minimumBytes + 1024)], at: 0))
        XCTAssertFalse(try direct.read(vectors: [iovec(iov_base: memory.memory + 512, iov_len: DirectIO.minimumBytes)], at: 0))
        try store.read(vectors: [iovec(iov_base: memory.memory, iov_len: data.count)], at: 1024)
        XCTAssertTrue(Array(UnsafeRawBufferPointer(start: memory.memory, count: data.count)) == data)
        XCTAssertTrue(direct.isActive, "a refused alignment switched direct I/O off")
    }

    func testALongRunIsWrittenPastTheHostCacheAndAShortOneThroughIt() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let long = PageMemory(pattern(DirectIO.minimumBytes, seed: 5))
        let short = PageMemory(pattern(Page.size, seed: 6))
        try store.write(vectors: long.vectors, at: 0)
        try store.write(vectors: short.vectors, at: UInt64(DirectIO.minimumBytes))
        let cached = try residentPages(of: store.path, count: DirectIO.minimumBytes / Page.size + 1)
        XCTAssertEqual(cached.prefix(DirectIO.minimumBytes / Page.size).filter { $0 }.count, 0,
                       "the long run went through the host's page cache")
        XCTAssertEqual(cached.last, true, "the short run did not go through the host's page cache")
        XCTAssertTrue(direct.isActive)
        try store.flush()
        XCTAssertTrue(try store.read(DirectIO.minimumBytes + Page.size, at: 0) == long.bytes + short.bytes)
    }

    func testBufferedAndDirectWritesOfOneRangeKeepTheirOrder() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let length = 2 * DirectIO.minimumBytes
        // Buffered, still dirty in the host's cache, then covered by a direct run.
        try store.write(pattern(Page.size, seed: 1), at: 3 * UInt64(Page.size))
        let run = PageMemory(pattern(length, seed: 2))
        XCTAssertTrue(try direct.write(vectors: run.vectors, at: 0), "an aligned long run went buffered")
        var expected = run.bytes
        XCTAssertTrue(try store.read(length, at: 0) == expected, "a buffered read saw the older buffered write")
        // Buffered over part of the direct run: direct and buffered reads both see it.
        let later = pattern(Page.size, seed: 3)
        try store.write(later, at: 5 * UInt64(Page.size))
        expected.replaceSubrange(5 * Page.size..<6 * Page.size, with: later)
        let readBack = PageMemory(Array(repeating: 0, count: length))
        XCTAssertTrue(try direct.read(vectors: readBack.vectors, at: 0))
        XCTAssertTrue(readBack.bytes == expected, "a direct read missed a buffered write after a direct one")
        XCTAssertTrue(try store.read(length, at: 0) == expected)
    }

    func testShortUnalignedAndReadOnlyWritesGoBuffered() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = PageMemory(pattern(DirectIO.minimumBytes + Page.size, seed: 7))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory, iov_len: DirectIO.minimumBytes - Page.size)], at: 0))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory, iov_len: DirectIO.minimumBytes)], at: 512))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory + 512, iov_len: DirectIO.minimumBytes)], at: 0))
        XCTAssertTrue(direct.isActive, "a refused alignment switched direct I/O off")
        try store.write(vectors: [iovec(iov_base: run.memory + 512, iov_len: DirectIO.minimumBytes)], at: 512)
        XCTAssertTrue(try store.read(DirectIO.minimumBytes, at: 512) == Array(run.bytes[512..<512 + DirectIO.minimumBytes]))

        let (readOnly, readOnlyDirect, readOnlyDirectory) = try imageStore(writable: false)
        defer { try? FileManager.default.removeItem(atPath: readOnlyDirectory) }
        XCTAssertFalse(readOnlyDirect.isWritable)
        XCTAssertFalse(try readOnlyDirect.write(vectors: run.vectors, at: 0))
        XCTAssertTrue(try readOnlyDirect.read(vectors: run.vectors, at: 0), "a read-only image did not read direct")
        XCTAssertFalse(readOnly.isWritable)
    }

    /// Whether each of the first `count` pages of the file is in the host's page cache (mincore).
    private func residentPages(of path: String, count: Int) throws -> [Bool] {
        let descriptor = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        defer { close(descriptor) }
        let length = count * Page.size
        let mapping = try XCTUnwrap(mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0))
        XCTAssertNotEqual(mapping, MAP_FAILED)
        defer { munmap(mapping, length) }
        var vector = [UInt8](repeating: 0, count: count)
        XCTAssertEqual(mincore(mapping, length, &vector), 0)
        return vector.map { $0 & 1 != 0 }
    }
}

/// Page-aligned memory holding `bytes`, as page memory is, with one vector per page.
private final class PageMemory {
    let memory: UnsafeMutableRawPointer
    let count: Int

    init(_ bytes: [UInt8]) {
        count = bytes.count
        memory = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: Page.size)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }

    deinit { memory.deallocate() }

    var vectors: [iovec] {
        stride(from: 0, to: count, by: Page.size).map { iovec(iov_base: memory + $0, iov_len: min(Page.size, count - $0)) }
    }

    var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: memory, count: count)) }
}
