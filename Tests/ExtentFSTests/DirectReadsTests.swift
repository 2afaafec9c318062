import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import ExtentFS

/// File data reads go past the host's page cache (DirectReads) and still see every write that
/// returned before them, though writes go through the host's cache; what is not aligned for
/// direct I/O is read buffered.
final class DirectReadsTests: XCTestCase {
    private func imageStore() throws -> (BackingStore, DirectReads, String) {
        var template = Array("/var/tmp/extentfs-direct-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let image = directory + "/disk.img"
        XCTAssertTrue(FileManager.default.createFile(atPath: image, contents: nil))
        XCTAssertEqual(truncate(image, 1 << 20), 0)
        let store = try BackingStore(path: image, writable: true)
        let reads = try XCTUnwrap((store.backend as? FileStore)?.directReads,
                                  "the host refused O_DIRECT on \(directory): direct reads are not tested")
        return (store, reads, directory)
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
}
