import CHeapProbe
import XCTest
import SystemPackage
@testable import ExtentFS

/// The daemon keeps all metadata in memory while mounted (the on-disk indexes of DESIGN.md's
/// "Scale" are still to come), so its memory grows with what users create. What bounds it is the
/// charge: every file, name, xattr and extent is counted at its encoded size
/// (MetadataSpace.inodeBytes) and three times that is taken from free space. This measures the
/// heap a mounted volume gains for each kind of metadata against what it counts, so that no kind
/// costs memory out of proportion to what it is charged.
final class MetadataMemoryTests: XCTestCase {
    /// Heap bytes per counted byte, at most. Measured on this machine (README, "Limits"): about
    /// 6.4 for empty files (880 bytes each), 5.8 for tiny xattrs, 2.1 for extents: memory is about
    /// twice the space charged (three times the counted bytes) at most.
    static let heapPerCountedByte = 10.0

    private func heapBytes() -> Int { Int(extentfs_test_heap_bytes()) }

    private func measure(_ volume: TestVolume, _ what: String, _ body: () throws -> Void) rethrows {
        let metadata = volume.fs.metadata
        let countedBefore = metadata.withLock { metadata.space.inodeBytes }
        let heapBefore = heapBytes()
        try body()
        let heap = heapBytes() - heapBefore
        let counted = metadata.withLock { metadata.space.inodeBytes } - countedBefore
        let ratio = Double(heap) / Double(counted)
        print("memory: \(what): \(heap) heap bytes for \(counted) counted (\(String(format: "%.1f", ratio)) per byte)")
        XCTAssertGreaterThan(counted, 0, what)
        XCTAssertLessThanOrEqual(ratio, Self.heapPerCountedByte, "\(what): \(heap) heap bytes for \(counted) counted")
    }

    func testFilesXattrsAndExtentsCostMemoryInProportionToTheirCharge() throws {
        let volume = try TestVolume(size: 1 << 30)
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("files".utf8), mode: 0o755, owner: .root).ino
        try measure(volume, "20,000 empty files") {
            for index in 0..<20_000 {
                let name = Array(String(format: "file-%05d", index).utf8)
                _ = try volume.fs.create(parent: directory, name: name, mode: 0o644, flags: 0, owner: .root)
            }
        }
        let tagged = try volume.create("tagged")
        try measure(volume, "5,000 xattrs of 8 bytes on one file") {
            for index in 0..<5_000 {
                try volume.fs.setxattr(tagged, name: Array(String(format: "user.%05d", index).utf8), value: [UInt8](repeating: 1, count: 8), flags: [])
            }
        }
        let sparse = try volume.create("sparse")
        try measure(volume, "20,000 extents") {
            let b = UInt64(volume.blockSize)
            for index in 0..<20_000 {
                try volume.fs.fallocate(sparse, offset: UInt64(2 * index) * b, length: b, mode: .keepSize)
            }
        }
        try volume.unmountAndCheck()
    }
}

extension MetadataMemoryTests {
    /// Issue 11's memory bound: files and xattrs a user creates cost memory only until a
    /// checkpoint holds them; then the inode table lets the clean ones go, and the heap a volume
    /// of 20,000 files with 1 KiB of xattrs each gains (about 60 MB with everything in memory)
    /// stays within the metadata cache's budget and a few MiB of bookkeeping.
    func testCreatedFilesAndXattrsStayWithinTheMetadataCacheBudget() throws {
        let budget = 8 << 20
        let volume = try TestVolume(size: 1 << 30)
        volume.options.metadataCacheBytes = budget
        try volume.remount()
        let fs = volume.fs!
        let heapBefore = heapBytes()
        for group in 0..<20 {
            let directory = try fs.mkdir(parent: FileSystem.rootInode, name: Array("d\(group)".utf8), mode: 0o755, owner: .root).ino
            for index in 0..<1_000 {
                let ino = try fs.create(parent: directory, name: Array(String(format: "file-%05d", index).utf8), mode: 0o644, flags: 0, owner: .root).ino
                for tag in 0..<4 {
                    try fs.setxattr(ino, name: Array("user.tag\(tag)".utf8), value: [UInt8](repeating: UInt8(tag), count: 256), flags: [])
                }
                fs.release(ino)
                fs.forget(ino, count: 1)
            }
            try fs.sync()
            try fs.journal.checkpoint()
        }
        let heap = heapBytes() - heapBefore
        let held = fs.metadata.withLock { fs.metadata.inodes.count }
        print("memory: 20,000 files with 1 KiB of xattrs each, budget \(budget): \(heap) heap bytes, \(held) inodes held")
        XCTAssertLessThan(held, 20_000 / 2, "clean inodes were let go")
        XCTAssertLessThanOrEqual(heap, budget + (8 << 20), "heap within the metadata cache budget and bookkeeping")
        // And all of it reads back.
        let directory = try fs.lookup(parent: FileSystem.rootInode, name: Array("d7".utf8)).ino
        let ino = try fs.lookup(parent: directory, name: Array("file-00123".utf8)).ino
        XCTAssertEqual(try fs.getxattr(ino, name: Array("user.tag3".utf8)), [UInt8](repeating: 3, count: 256))
        try volume.unmountAndCheck()
    }
}
