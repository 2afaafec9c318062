import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of an image file that are not holes, read once: the image as mkfs left it, before
/// the mount that is recorded. Images are sparse, so this is a few blocks, not the image size.
struct ImageSnapshot {
    var size: UInt64
    var regions: [(offset: UInt64, bytes: [UInt8])]

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        size = UInt64(lseek(fd, 0, SEEK_END))
        regions = []
        var position: off_t = 0
        while true {
            let data = lseek(fd, position, 3 /* SEEK_DATA */)
            if data < 0 { break }
            let hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            var bytes = [UInt8](repeating: 0, count: Int(hole - data))
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, data) }
            guard got == bytes.count else { throw Errno(rawValue: errno) }
            regions.append((offset: UInt64(data), bytes: bytes))
            position = hole
        }
    }
}

/// Rebuilds the image a power cut may leave at a crash point: the base image, every write issued
/// before flush k completed, and a chosen subset of the writes issued between flush k and flush
/// k + 1 (the device may have made any of them durable, in any order, and a write only partly:
/// some of its 512-byte sectors). Crash points are visited with k ascending: the durable prefix
/// is kept in memory and grows, and each rebuilt file gets only the sectors ever written (it
/// stays sparse and cheap to write).
final class CrashImageBuilder {
    static let sectorSize = 512

    struct Write {
        var offset: UInt64
        var bytes: [UInt8]
    }

    /// One pending write as it reaches the rebuilt image: whole, or only some sectors.
    struct Applied {
        var write: Int
        /// nil: every sector; else which of its sectors (index from the write's start).
        var sectors: [Bool]?
    }

    let size: UInt64
    /// Every write the engine issued, in order.
    let writes: [Write]
    /// flushStarts[k] = the number of writes issued before flush k + 1 (k from 0): the durable
    /// prefix of crash point k is writes[0..<flushStarts[k]] (flushStarts[0] = 0: nothing flushed).
    let flushStarts: [Int]
    private let prefix: UnsafeMutableRawPointer
    private var touched: [Bool]
    private var prefixWrites = 0

    var flushCount: Int { flushStarts.count - 1 }

    init(base: ImageSnapshot, events: [CrashRecorder.Event]) {
        size = base.size
        var writes: [Write] = []
        var flushStarts = [0]
        for event in events {
            switch event {
            case .write(let offset, let bytes): writes.append(Write(offset: offset, bytes: bytes))
            case .flush: flushStarts.append(writes.count)
            case .failed: break
            }
        }
        self.writes = writes
        self.flushStarts = flushStarts
        prefix = UnsafeMutableRawPointer.allocate(byteCount: Int(size), alignment: 4096)
        prefix.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
        touched = [Bool](repeating: false, count: Int((size + UInt64(Self.sectorSize) - 1) / UInt64(Self.sectorSize)))
        for region in base.regions { apply(offset: region.offset, region.bytes) }
    }

    deinit { prefix.deallocate() }

    /// The writes issued after flush k and before flush k + 1 (after the last flush: to the end).
    func pendingWrites(afterFlush k: Int) -> Range<Int> {
        flushStarts[k]..<(k + 1 < flushStarts.count ? flushStarts[k + 1] : writes.count)
    }

    /// Writes the image of crash point k with `pending` applied (in issue order) to `path`.
    func build(at path: String, flush k: Int, pending: [Applied]) throws {
        let durableEnd = flushStarts[k]
        precondition(durableEnd >= prefixWrites, "crash points must be visited with k ascending")
        while prefixWrites < durableEnd {
            apply(offset: writes[prefixWrites].offset, writes[prefixWrites].bytes)
            prefixWrites += 1
        }
        unlink(path)
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw Errno(rawValue: errno) }
        var sector = 0
        while sector < touched.count {
            guard touched[sector] else { sector += 1; continue }
            var end = sector
            while end < touched.count && touched[end] { end += 1 }
            let offset = sector * Self.sectorSize
            let length = min(end * Self.sectorSize, Int(size)) - offset
            try writeFully(fd, prefix + offset, length, at: offset)
            sector = end
        }
        for applied in pending {
            let write = writes[applied.write]
            try write.bytes.withUnsafeBytes { bytes in
                try forEachSector(of: write, applied.sectors) { from, length in
                    try writeFully(fd, bytes.baseAddress! + from, length, at: Int(write.offset) + from)
                }
            }
        }
    }

    /// The byte ranges (relative to the write) of the sectors chosen; sectors are counted from the
    /// write's start, which is sector-aligned for every write the engine issues.
    private func forEachSector(of write: Write, _ sectors: [Bool]?, _ body: (Int, Int) throws -> Void) rethrows {
        guard let sectors else { return try body(0, write.bytes.count) }
        for (index, chosen) in sectors.enumerated() where chosen {
            let from = index * Self.sectorSize
            try body(from, min(Self.sectorSize, write.bytes.count - from))
        }
    }

    static func sectorCount(of write: Write) -> Int { (write.bytes.count + sectorSize - 1) / sectorSize }

    /// Adds a durable write to the prefix image.
    private func apply(offset: UInt64, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { source in
            (prefix + Int(offset)).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
        let first = Int(offset) / Self.sectorSize
        let end = (Int(offset) + bytes.count + Self.sectorSize - 1) / Self.sectorSize
        for sector in first..<end { touched[sector] = true }
    }

    private func writeFully(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let result = pwrite(fd, pointer + done, count - done, off_t(offset + done))
            guard result > 0 else { throw Errno(rawValue: errno) }
            done += result
        }
    }
}
