import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Finds the extentfs binary and the FUSE tools, and owns a scratch directory whose images and
/// mounts it removes again. A missing prerequisite fails the test: these tests never skip.
final class MountHarness {
    /// Block sizes every integration test runs at; EXTENTFS_TEST_BLOCK_SIZES="4096" narrows it.
    static var blockSizes: [Int] {
        let configured = ProcessInfo.processInfo.environment["EXTENTFS_TEST_BLOCK_SIZES"] ?? "1024,4096"
        return configured.split(whereSeparator: { $0 == "," || $0 == " " }).compactMap { Int($0) }
    }

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    let binary: String
    let fusermount: String
    /// Every mount of every volume lives under here; test.sh finds leftovers by the "extentfs-it-" tag.
    let workDirectory: String
    private var volumes: [TestVolume] = []

    init(file: StaticString = #filePath, line: UInt = #line) throws {
        var problems: [String] = []
        var st = stat()
        if stat("/dev/fuse", &st) != 0 || (st.st_mode & S_IFMT) != S_IFCHR {
            problems.append("/dev/fuse is missing: this machine cannot mount FUSE filesystems (see scripts/install-deps.sh)")
        }
        let environment = ProcessInfo.processInfo.environment
        let binary = environment["EXTENTFS_BIN"]
            ?? MountHarness.packageRoot.appendingPathComponent(".build/debug/extentfs").path
        if !FileManager.default.isExecutableFile(atPath: binary) {
            problems.append("extentfs binary not found at \(binary): run `swift build` first or set EXTENTFS_BIN")
        }
        let fusermount = MountHarness.findExecutable("fusermount3")
        if fusermount == nil {
            problems.append("fusermount3 is not installed (apt-get install fuse3, or run scripts/install-deps.sh)")
        }
        guard problems.isEmpty, let fusermount else {
            let message = "integration test prerequisites missing:\n  " + problems.joined(separator: "\n  ")
            XCTFail(message, file: file, line: line)
            throw HarnessError(message)
        }
        self.binary = binary
        self.fusermount = fusermount
        self.workDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("extentfs-it-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
    }

    /// A fresh image of `imageSize` (mkfs size syntax, e.g. "64M"), formatted but not mounted.
    func makeVolume(blockSize: Int, imageSize: String) throws -> TestVolume {
        let volume = try TestVolume(harness: self, name: "bs\(blockSize)-\(volumes.count)", blockSize: blockSize)
        volumes.append(volume)
        let result = try volume.format(size: imageSize)
        guard result.succeeded else {
            throw HarnessError("mkfs of a \(imageSize) image with block size \(blockSize) failed: \(result)")
        }
        return volume
    }

    /// A fresh volume on an NBD export (the export's size), formatted but not mounted; the CLI
    /// is given the URI wherever it takes an image.
    func makeVolume(blockSize: Int, nbdURI: String) throws -> TestVolume {
        let volume = try TestVolume(harness: self, name: "nbd-bs\(blockSize)-\(volumes.count)", blockSize: blockSize, image: nbdURI)
        volumes.append(volume)
        let result = try volume.format(size: nil)
        guard result.succeeded else {
            throw HarnessError("mkfs of \(nbdURI) with block size \(blockSize) failed: \(result)")
        }
        return volume
    }

    /// A directory for images that are not made by mkfs (foreign or damaged ones).
    func makeScratchVolume(name: String, blockSize: Int = 4096) throws -> TestVolume {
        let volume = try TestVolume(harness: self, name: "\(name)-\(volumes.count)", blockSize: blockSize)
        volumes.append(volume)
        return volume
    }

    func extentfs(_ arguments: [String], timeout: TimeInterval = 120) throws -> ProcessResult {
        try ProcessRunner.run(binary, arguments, timeout: timeout)
    }

    /// Unmounts whatever is still mounted and deletes the scratch directory. Call from a defer.
    func tearDown(file: StaticString = #filePath, line: UInt = #line) {
        for volume in volumes {
            volume.cleanUp()
        }
        let leftovers = MountTable.mountPoints(under: workDirectory)
        guard leftovers.isEmpty else {
            // Deleting a directory tree with a live mount inside would delete inside the mount.
            XCTFail("mounts still present, not deleting \(workDirectory): \(leftovers)", file: file, line: line)
            return
        }
        try? FileManager.default.removeItem(atPath: workDirectory)
    }

    func forceUnmount(_ mountPoint: String) {
        _ = try? ProcessRunner.run(fusermount, ["-uz", mountPoint], timeout: 30)
        if MountTable.isMounted(mountPoint) {
            _ = try? ProcessRunner.run("/bin/umount", ["-l", mountPoint], timeout: 30)
        }
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
