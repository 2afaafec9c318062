import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A full volume says ENOSPC from write(), loses nothing it acknowledged, and works again once
/// space is freed (DESIGN.md rule 4: space is reserved at write time).
final class FullDiskTests: XCTestCase {
    static let fileSize = 1 << 20
    static let chunkSize = 128 << 10

    struct WrittenFile {
        var name: String
        var seed: UInt64
        var acknowledged: Int
    }

    func testENOSPCKeepsAcknowledgedDataAndSpaceComesBack() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "32M")
            try volume.mount()
            let empty = try fileSystemStatus(volume.mountPoint)
            let available = Int(empty.f_bavail) * Int(empty.f_frsize != 0 ? empty.f_frsize : empty.f_bsize)

            var written = try fillUntilENOSPC(volume, context)
            let total = written.reduce(0) { $0 + $1.acknowledged }
            // ENOSPC must mean full: allow for metadata of the files written, not much more.
            XCTAssertGreaterThanOrEqual(total, available * 8 / 10,
                                        "\(context): ENOSPC after \(total) bytes, but statfs said \(available) were available")
            try verify(written, in: volume, "\(context), after ENOSPC")

            try volume.remountChecked("\(context), full volume")
            try verify(written, in: volume, "\(context), full volume after remount")

            guard let victim = written.first(where: { $0.acknowledged == FullDiskTests.fileSize }) else {
                throw HarnessError("\(context): no file was written in full before ENOSPC")
            }
            let before = try fileSystemStatus(volume.mountPoint)
            try sys("\(context): unlink \(victim.name)", unlink(volume.path(victim.name)))
            written.removeAll { $0.name == victim.name }
            let freed = try waitForFreedBytes(volume, since: before, atLeast: FullDiskTests.fileSize)
            XCTAssertGreaterThanOrEqual(freed, FullDiskTests.fileSize,
                                        "\(context): f_bfree grew by only \(freed) bytes after deleting a 1 MiB file")

            let refill = WrittenFile(name: "refill", seed: 424_242, acknowledged: FullDiskTests.fileSize / 2)
            let fd = try openFile(volume.path(refill.name), O_WRONLY | O_CREAT | O_EXCL)
            do {
                try writeAll(fd, TestContent.bytes(seed: refill.seed, count: refill.acknowledged), path: refill.name)
            } catch {
                close(fd)
                let now = try fileSystemStatus(volume.mountPoint)
                throw HarnessError("\(context): writing \(refill.acknowledged) bytes after deleting a 1 MiB file failed (\(error)) "
                                   + "although statfs reports \(Int(now.f_bfree) * Int(now.f_frsize)) bytes free")
            }
            try sys("\(context): fsync refill", fsync(fd))
            try closeFile(fd)
            written.append(refill)
            try verify(written, in: volume, "\(context), after freeing space")

            try volume.remountChecked("\(context), after freeing space")
            try verify(written, in: volume, "\(context), after freeing space and remount")
            try volume.unmount()
            try volume.requireClean("\(context), end")
        }
    }

    /// Writes 1 MiB files in 128 KiB writes until a create or write fails, which must be ENOSPC.
    /// Every file is fsynced, including the one that hit ENOSPC: what was acknowledged had its
    /// space reserved, so writeback cannot fail.
    private func fillUntilENOSPC(_ volume: TestVolume, _ context: String) throws -> [WrittenFile] {
        var written: [WrittenFile] = []
        for index in 0..<200 {
            let name = "fill-\(index)"
            let fd = open(volume.path(name), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd < 0 {
                let code = errno
                guard code == ENOSPC else {
                    throw HarnessError("\(context): creating \(name) failed with \(errnoName(code)), expected ENOSPC")
                }
                return written
            }
            var file = WrittenFile(name: name, seed: UInt64(index) &+ 1000, acknowledged: 0)
            let content = TestContent.bytes(seed: file.seed, count: FullDiskTests.fileSize)
            var full = false
            while file.acknowledged < content.count {
                let offset = file.acknowledged
                let count = min(FullDiskTests.chunkSize, content.count - offset)
                let n = content.withUnsafeBytes { pwrite(fd, $0.baseAddress! + offset, count, off_t(offset)) }
                if n < 0 {
                    let code = errno
                    guard code == ENOSPC else {
                        close(fd)
                        throw HarnessError("\(context): write to \(name) at \(offset) failed with \(errnoName(code)), expected ENOSPC")
                    }
                    full = true
                    break
                }
                file.acknowledged += n
            }
            try sys("\(context): fsync \(name) after ENOSPC-bound writes (\(file.acknowledged) bytes acknowledged)", fsync(fd))
            try sys("\(context): close \(name)", close(fd))
            written.append(file)
            if full { return written }
        }
        throw HarnessError("\(context): wrote 200 MiB into a 32 MiB image without ENOSPC")
    }

    private func verify(_ files: [WrittenFile], in volume: TestVolume, _ context: String) throws {
        for file in files {
            let expected = TestContent.bytes(seed: file.seed, count: FullDiskTests.fileSize)[0..<file.acknowledged]
            let actual = try readWholeFile(volume.path(file.name))
            if actual != Array(expected) {
                XCTFail("\(context): \(file.name) differs from its \(file.acknowledged) acknowledged bytes \(firstDifference(Array(expected), actual))")
            }
        }
    }

    /// Freed space may be returned at the next commit; wait a little for it.
    private func waitForFreedBytes(_ volume: TestVolume, since before: statvfs, atLeast wanted: Int) throws -> Int {
        let unit = Int(before.f_frsize != 0 ? before.f_frsize : before.f_bsize)
        var freed = 0
        for _ in 0..<50 {
            try syncFileSystem(containing: volume.mountPoint)
            let now = try fileSystemStatus(volume.mountPoint)
            freed = (Int(now.f_bfree) - Int(before.f_bfree)) * unit
            if freed >= wanted { break }
            usleep(200_000)
        }
        return freed
    }
}
