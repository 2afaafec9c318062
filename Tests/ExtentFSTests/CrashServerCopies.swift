import Foundation
@testable import ExtentFS

/// The durable side of an NBD crash volume at every flush point, taken at the server: an
/// interceptor in front of the CrashRecorder that, as the engine issues flush k + 1, copies the
/// file behind the server's write cache (CrashNBDExport). Flush k has returned by then and the
/// workload is single-threaded, so the copy is what a power cut after flush k would leave;
/// `finish` takes the last one, after the workload's final flush.
///
/// The recorder sits above the backing-store interface, so the images CrashReplay rebuilds from
/// it assume every flush made the writes before it durable. These copies check that assumption
/// on the far side of the NBD store and the wire: for crash point k, every sector of the copy must
/// be what the writes before flush k left there, or what one of the writes in flight after it
/// wrote (a disk may make any of them durable early). A dropped flush, or a flush sent before the
/// writes it must cover were answered, leaves older bytes: a finding. Each copy is also checked as
/// the rebuilt images are (fsck, mount, the crash checks).
final class CrashServerCopies: BackingStoreInterceptor, @unchecked Sendable {
    private let recorder: CrashRecorder
    private let file: String
    private let lock = NSLock()
    private var _copies: [ImageSnapshot] = []
    private var copyError: Error?

    init(recording recorder: CrashRecorder, file: String) {
        self.recorder = recorder
        self.file = file
    }

    func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try recorder.willWrite(bytes, at: offset)
    }

    func willFlush() throws {
        try recorder.willFlush()
        takeCopy()
    }

    /// The copy after the last flush: call once the workload ended.
    func finish() { takeCopy() }

    /// copies[k]: the server's durable image after flush k (0: before the first).
    var copies: [ImageSnapshot] { lock.withLock { _copies } }

    private func takeCopy() {
        lock.withLock {
            do { _copies.append(try ImageSnapshot(path: file)) } catch { copyError = copyError ?? error }
        }
    }

    /// The findings of crash point k: the copy against the rebuilt image with none of the writes
    /// in flight (built at `expected`), then the copy itself (written to `copyImage`) recovered
    /// and checked.
    func check(flush k: Int, builder: CrashImageBuilder, model: CrashModel, expected: String, copyImage: String) throws -> [CrashFinding] {
        if let copyError = lock.withLock({ copyError }) { throw copyError }
        let copies = self.copies
        guard copies.count == builder.flushCount + 1 else {
            return [CrashFinding(key: "server copies miscounted",
                                 message: "\(copies.count) copies of the server's durable image for \(builder.flushCount) flushes (one more expected)")]
        }
        try builder.build(at: expected, flush: k, pending: [])
        try write(copies[k], to: copyImage)
        var findings: [CrashFinding] = []
        if let difference = try firstUnexplainedSector(copyImage, expected, builder: builder, flush: k) {
            findings.append(CrashFinding(
                key: "the server's durable copy lacks flushed writes",
                message: "the server's durable image after flush \(k) differs at byte \(difference) from what the writes " +
                    "before that flush left there, and no write in flight after it wrote those bytes: a flush did not " +
                    "make the writes before it durable"))
        }
        let recovered = checkRecoveredImage(copyImage, model: model, crashAfter: k, fsckFirst: true)
        findings += recovered.map { CrashFinding(key: "server copy: " + $0.key, message: "the server's durable image after flush \(k): " + $0.message) }
        return findings
    }

    /// The offset of the first sector where `copy` holds neither `expected`'s bytes nor those of a
    /// write in flight after flush k that covers it.
    private func firstUnexplainedSector(_ copy: String, _ expected: String, builder: CrashImageBuilder, flush k: Int) throws -> UInt64? {
        let sector = CrashImageBuilder.sectorSize
        let copyData = try Data(contentsOf: URL(fileURLWithPath: copy))
        let expectedData = try Data(contentsOf: URL(fileURLWithPath: expected))
        guard copyData.count == expectedData.count else { return UInt64(min(copyData.count, expectedData.count)) }
        let pending = builder.pendingWrites(afterFlush: k).map { builder.writes[$0] }
        return copyData.withUnsafeBytes { copyBytes in
            expectedData.withUnsafeBytes { expectedBytes in
                func same(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool { memcmp(a, b, count) == 0 }
                // Whole stretches first (memcmp: a debug build compares arrays a byte at a time).
                let stretch = 1 << 20
                var base = 0
                while base < copyBytes.count {
                    let stretchEnd = min(base + stretch, copyBytes.count)
                    defer { base = stretchEnd }
                    if same(copyBytes.baseAddress! + base, expectedBytes.baseAddress! + base, stretchEnd - base) { continue }
                    for offset in stride(from: base, to: stretchEnd, by: sector) {
                        let count = min(sector, stretchEnd - offset)
                        if same(copyBytes.baseAddress! + offset, expectedBytes.baseAddress! + offset, count) { continue }
                        let explained = pending.contains { write in
                            let start = Int(write.offset)
                            guard start <= offset, offset + count <= start + write.bytes.count else { return false }
                            return write.bytes.withUnsafeBytes { same($0.baseAddress! + (offset - start), copyBytes.baseAddress! + offset, count) }
                        }
                        if !explained { return UInt64(offset) }
                    }
                }
                return nil
            }
        }
    }

    private func write(_ snapshot: ImageSnapshot, to path: String) throws {
        unlink(path)
        guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(snapshot.size)) == 0,
              let handle = FileHandle(forWritingAtPath: path) else {
            throw CrashWorkloadRunner.HarnessError(description: "cannot create \(path)")
        }
        defer { try? handle.close() }
        for region in snapshot.regions {
            try handle.seek(toOffset: region.offset)
            try handle.write(contentsOf: region.bytes)
        }
    }
}
