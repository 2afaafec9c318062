import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Images that are damaged, foreign or in use are refused quickly, with one line of explanation,
/// by mount, fsck and mkfs.
final class DamagedImageTests: XCTestCase {
    func testCorruptSuperblockIsRefused() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            try createFile(volume.path("a.bin"), contents: TestContent.bytes(seed: 1, count: 10_000))
            try makeDirectory(volume.path("dir"))
            try createFile(volume.path("dir/b.bin"), contents: TestContent.bytes(seed: 2, count: 3 * blockSize))
            try volume.unmount()
            try volume.requireClean("\(context), before damage")

            let fd = try openFile(volume.image, O_WRONLY)
            try writeAll(fd, TestContent.bytes(seed: 0xBAD, count: 512), at: 0, path: volume.image)
            try sys("fsync image", fsync(fd))
            try closeFile(fd)

            try assertMountRefused(volume, "\(context), corrupt superblock")
            try assertFsckReportsProblem(volume, "\(context), corrupt superblock")
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
