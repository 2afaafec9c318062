import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Images that are damaged, foreign or in use are refused quickly, with one line of explanation,
/// by mount, fsck and mkfs.
final class DamagedImageTests: XCTestCase {
    /// The two 512-byte superblock copies (docs/FORMAT.md): a commit writes them alternately, so
    /// that a torn write leaves the other one intact.
    static let superblockCopies = [0, 4096]

    func testCorruptSuperblockIsRefused() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            let first = TestContent.bytes(seed: 1, count: 10_000)
            let second = TestContent.bytes(seed: 2, count: 3 * blockSize)
            try volume.mount()
            try createFile(volume.path("a.bin"), contents: first)
            try makeDirectory(volume.path("dir"))
            try createFile(volume.path("dir/b.bin"), contents: second)
            try volume.unmount()
            try volume.requireClean("\(context), before damage")

            // The older copy damaged: mount uses the newer one, and nothing is lost. (Damaging the
            // newer copy rolls back to the previous commit, which is the design, so it is not tested.)
            let sequences = try DamagedImageTests.superblockCopies.map { try superblockSequence(volume.image, at: $0) }
            let older = sequences[0] < sequences[1] ? 0 : 1
            try overwrite(volume.image, at: DamagedImageTests.superblockCopies[older], seed: 0xBAD)
            try assertFsckReportsProblem(volume, "\(context), older superblock copy corrupt")
            try volume.mount()
            XCTAssertEqual(try readWholeFile(volume.path("a.bin")), first, "\(context): a.bin with the older superblock copy damaged")
            XCTAssertEqual(try readWholeFile(volume.path("dir/b.bin")), second, "\(context): dir/b.bin with the older superblock copy damaged")
            try volume.unmount()
            // The mount rewrote the damaged copy at its commit.
            try volume.requireClean("\(context), after a mount healed the damaged superblock copy")

            // Both copies damaged: nothing to mount.
            for (index, offset) in DamagedImageTests.superblockCopies.enumerated() {
                try overwrite(volume.image, at: offset, seed: 0xBAD0 + UInt64(index))
            }
            try assertMountRefused(volume, "\(context), both superblock copies corrupt")
            try assertFsckReportsProblem(volume, "\(context), both superblock copies corrupt")
        }
    }

    func testForeignImagesAreRefused() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        let random = try harness.makeScratchVolume(name: "random")
        let randomFD = try openFile(random.image, O_WRONLY | O_CREAT | O_EXCL)
        try writeAll(randomFD, TestContent.bytes(seed: 42, count: 16 << 20), path: random.image)
        try closeFile(randomFD)

        let zeros = try harness.makeScratchVolume(name: "zeros")
        let zerosFD = try openFile(zeros.image, O_WRONLY | O_CREAT | O_EXCL)
        try sys("ftruncate \(zeros.image)", ftruncate(zerosFD, 16 << 20))
        try closeFile(zerosFD)

        for (volume, kind) in [(random, "random bytes"), (zeros, "zeros")] {
            let result = try assertMountRefused(volume, kind)
            let message = result.stderr.lowercased()
            XCTAssertTrue(["not an extentfs", "superblock", "magic"].contains { message.contains($0) },
                          "\(kind): mount should say the image is not extentfs: \(result)")
            try assertFsckReportsProblem(volume, kind)
        }
    }

    func testMkfsRefusesExistingImageWithoutForce() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            let kept = TestContent.bytes(seed: 7, count: 5 * blockSize + 3)
            try volume.mount()
            try createFile(volume.path("keep.bin"), contents: kept)
            try volume.unmount()

            for size in [nil, "64M"] as [String?] {
                let refused = try volume.format(size: size)
                XCTAssertFalse(refused.succeeded || refused.timedOut || refused.terminatedBySignal,
                               "\(context): mkfs over an extentfs image without --force must fail cleanly: \(refused)")
                XCTAssertFalse(refused.stderr.isEmpty, "\(context): mkfs refused silently: \(refused)")
            }
            try volume.requireClean("\(context), after refused mkfs")
            try volume.mount()
            XCTAssertEqual(try readWholeFile(volume.path("keep.bin")), kept, "\(context): refused mkfs changed the data")
            try volume.unmount()

            let forced = try volume.format(size: nil, force: true)
            XCTAssertTrue(forced.succeeded, "\(context): mkfs --force over an extentfs image: \(forced)")
            try volume.requireClean("\(context), after mkfs --force")
            try volume.mount()
            var st = stat()
            XCTAssertErrno(ENOENT, "\(context): keep.bin after mkfs --force") { lstat(volume.path("keep.bin"), &st) }
            try volume.unmount()
        }
    }

    func testSecondMountOfLiveImageFails() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let content = TestContent.bytes(seed: 11, count: 20_000)
            try createFile(volume.path("live.bin"), contents: content)

            let second = volume.directory + "/mnt2"
            let result = try volume.attemptMount(at: second, timeout: 30)
            XCTAssertFalse(result.timedOut, "\(context): a second mount of a live image hung")
            XCTAssertFalse(result.succeeded, "\(context): the same image mounted twice: \(result)")
            XCTAssertFalse(result.terminatedBySignal, "\(context): second mount crashed: \(result)")
            XCTAssertEqual(result.stderrLines.count, 1, "\(context): expected one line on stderr: \(result)")
            XCTAssertFalse(MountTable.isMounted(second), "\(context): \(second) is mounted")

            let inUse = try volume.fsck()
            XCTAssertEqual(inUse.status, 1, "\(context): fsck of a mounted image must exit 1: \(inUse)")
            XCTAssertFalse(inUse.terminatedBySignal || inUse.timedOut, "\(context): fsck of a mounted image: \(inUse)")

            // The first mount is unaffected.
            XCTAssertEqual(try readWholeFile(volume.path("live.bin")), content, "\(context): first mount after the refused one")
            try createFile(volume.path("after.bin"), contents: content)
            try volume.unmount()
            try volume.requireClean("\(context), after the refused second mount")
        }
    }

    /// The commit sequence number of a superblock copy: u64 little-endian at byte 48 (docs/FORMAT.md).
    private func superblockSequence(_ image: String, at offset: Int) throws -> UInt64 {
        let fd = try openFile(image, O_RDONLY)
        defer { close(fd) }
        let bytes = try readRange(fd, offset: offset + 48, count: 8, path: image)
        guard bytes.count == 8 else { throw HarnessError("\(image) is too short for a superblock at \(offset)") }
        return bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Overwrites 512 bytes of an unmounted image with garbage.
    private func overwrite(_ image: String, at offset: Int, seed: UInt64) throws {
        let fd = try openFile(image, O_WRONLY)
        defer { close(fd) }
        try writeAll(fd, TestContent.bytes(seed: seed, count: 512), at: offset, path: image)
        try sys("fsync \(image)", fsync(fd))
    }

    /// Mount must fail within the timeout, without crashing, with exactly one line on stderr.
    @discardableResult
    private func assertMountRefused(_ volume: TestVolume, _ context: String,
                                    file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let result = try volume.attemptMount(timeout: 30)
        XCTAssertFalse(result.timedOut, "\(context): mount hung instead of failing", file: file, line: line)
        XCTAssertFalse(result.succeeded, "\(context): mount succeeded: \(result)", file: file, line: line)
        XCTAssertFalse(result.terminatedBySignal, "\(context): mount crashed: \(result)", file: file, line: line)
        XCTAssertEqual(result.stderrLines.count, 1, "\(context): expected one line on stderr: \(result)", file: file, line: line)
        XCTAssertFalse(volume.isMounted, "\(context): \(volume.mountPoint) is mounted after a failed mount", file: file, line: line)
        return result
    }

    /// fsck must exit 1 and say something.
    private func assertFsckReportsProblem(_ volume: TestVolume, _ context: String,
                                          file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try volume.fsck()
        XCTAssertFalse(result.timedOut || result.terminatedBySignal, "\(context): fsck: \(result)", file: file, line: line)
        XCTAssertEqual(result.status, 1, "\(context): fsck must exit 1: \(result)", file: file, line: line)
        XCTAssertFalse((result.stdout + result.stderr).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                       "\(context): fsck failed without saying why", file: file, line: line)
    }
}
