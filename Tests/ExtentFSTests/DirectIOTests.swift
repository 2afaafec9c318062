import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import ExtentFS

/// File data goes past the host's page cache (DirectIO): reads, and writeback runs of 64 KiB or
/// more. Either way a transfer sees every one that returned before it, buffered or direct; what
/// is not aligned for direct I/O, and short writes, go buffered.
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
        let (store, reads, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = pattern(3 * Page.size, seed: 9)
        // Twice over the same range: the second write is dirty in the host cache when read.
        try store.write(Array(repeating: 1, count: data.count), at: 8192)
        try store.flush()
        try store.write(data, at: 8192)

        let memory = UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: Page.size)
        defer { memory.deallocate() }
        let vectors = (0..<3).map { iovec(iov_base: memory + $0 * Page.size, iov_len: Page.size) }
        XCTAssertTrue(try reads.read(vectors: vectors, at: 8192), "an aligned read went buffered")
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: memory, count: data.count)), data)
        XCTAssertTrue(reads.isActive)

        // Through the store, as a page fill reads.
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: data.count)
        try store.read(vectors: vectors, at: 8192)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: memory, count: data.count)), data)
    }

    func testUnalignedReadsGoBuffered() throws {
        let (store, reads, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = pattern(3000, seed: 4)
        try store.write(data, at: 1024)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Page.size, alignment: Page.size)
        defer { memory.deallocate() }
        // Offset, length and memory each off the alignment in turn.
        XCTAssertFalse(try reads.read(vectors: [iovec(iov_base: memory, iov_len: Page.size)], at: 1024))
        XCTAssertFalse(try reads.read(vectors: [iovec(iov_base: memory, iov_len: 1024)], at: 0))
        XCTAssertFalse(try reads.read(vectors: [iovec(iov_base: memory + 512, iov_len: Page.size - 512)], at: 0))
        try store.read(vectors: [iovec(iov_base: memory, iov_len: 3000)], at: 1024)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: memory, count: 3000)), data)
        XCTAssertTrue(reads.isActive, "a refused alignment switched direct reads off")
    }

    func testALongRunIsWrittenPastTheHostCacheAndAShortOneThroughIt() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let long = PageMemory(pattern(DirectIO.minimumWriteBytes, seed: 5))
        let short = PageMemory(pattern(Page.size, seed: 6))
        try store.write(vectors: long.vectors, at: 0)
        try store.write(vectors: short.vectors, at: UInt64(DirectIO.minimumWriteBytes))
        let cached = try residentPages(of: store.path, count: DirectIO.minimumWriteBytes / Page.size + 1)
        XCTAssertEqual(cached.prefix(DirectIO.minimumWriteBytes / Page.size).filter { $0 }.count, 0,
                       "the long run went through the host's page cache")
        XCTAssertEqual(cached.last, true, "the short run did not go through the host's page cache")
        XCTAssertTrue(direct.isActive)
        try store.flush()
        XCTAssertTrue(try store.read(DirectIO.minimumWriteBytes + Page.size, at: 0) == long.bytes + short.bytes)
    }

    func testBufferedAndDirectWritesOfOneRangeKeepTheirOrder() throws {
        let (store, direct, directory) = try imageStore()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let length = 2 * DirectIO.minimumWriteBytes
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
        let run = PageMemory(pattern(DirectIO.minimumWriteBytes + Page.size, seed: 7))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory, iov_len: DirectIO.minimumWriteBytes - Page.size)], at: 0))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory, iov_len: DirectIO.minimumWriteBytes)], at: 512))
        XCTAssertFalse(try direct.write(vectors: [iovec(iov_base: run.memory + 512, iov_len: DirectIO.minimumWriteBytes)], at: 0))
        XCTAssertTrue(direct.isActive, "a refused alignment switched direct I/O off")
        try store.write(vectors: [iovec(iov_base: run.memory + 512, iov_len: DirectIO.minimumWriteBytes)], at: 512)
        XCTAssertTrue(try store.read(DirectIO.minimumWriteBytes, at: 512) == Array(run.bytes[512..<512 + DirectIO.minimumWriteBytes]))

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
