import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// One image file and its mount point, driven through the extentfs CLI.
final class TestVolume {
    unowned let harness: MountHarness
    let blockSize: Int
    let directory: String
    let image: String
    let mountPoint: String
    /// Other mount points this volume's tests tried to use (a second mount of the same image).
    private var extraMountPoints: [String] = []
    private var mountCount = 0
    private(set) var currentLog: String?

    /// `image`: what the CLI is given (an NBD URI); by default a file in the volume's directory.
    init(harness: MountHarness, name: String, blockSize: Int, image: String? = nil) throws {
        self.harness = harness
        self.blockSize = blockSize
        directory = harness.workDirectory + "/" + name
        self.image = image ?? directory + "/image.img"
        mountPoint = directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
    }

    /// A path inside the mount.
    func path(_ relative: String) -> String { mountPoint + "/" + relative }

    var isMounted: Bool { MountTable.isMounted(mountPoint) }

    // MARK: - CLI commands, raw results

    func format(size: String?, force: Bool = false) throws -> ProcessResult {
        var arguments = ["mkfs", image, "--block-size", String(blockSize)]
        if let size { arguments += ["--size", size] }
        if force { arguments.append("--force") }
        return try harness.extentfs(arguments, timeout: 120)
    }

    /// Runs `extentfs mount` at `mountPoint` (or another directory) without judging the result.
    /// `arguments` go to the mount command as they are (e.g. "--allow-other", "-o", "suid").
    func attemptMount(at otherMountPoint: String? = nil, arguments: [String] = [],
                      timeout: TimeInterval = 60) throws -> ProcessResult {
        let target = otherMountPoint ?? mountPoint
        if let otherMountPoint {
            try FileManager.default.createDirectory(atPath: otherMountPoint, withIntermediateDirectories: true)
            extraMountPoints.append(otherMountPoint)
        }
        mountCount += 1
        let log = directory + "/daemon-\(mountCount).log"
        currentLog = log
        return try harness.extentfs(["mount", image, target, "--log", log] + arguments, timeout: timeout)
    }

    func fsck() throws -> ProcessResult {
        try harness.extentfs(["fsck", image], timeout: 300)
    }

    // MARK: - Checked lifecycle

    func mount(arguments: [String] = []) throws {
        let result = try attemptMount(arguments: arguments)
        guard result.succeeded else {
            throw HarnessError("mount of \(image) (block size \(blockSize)) failed: \(result)\(logTail())")
        }
        guard let entry = MountTable.entry(at: mountPoint) else {
            throw HarnessError("`extentfs mount` returned 0 but \(mountPoint) is not a mount point\(logTail())")
        }
        guard entry.fileSystemType.hasPrefix("fuse") else {
            throw HarnessError("\(mountPoint) is mounted as \(entry.fileSystemType), expected a FUSE mount")
        }
    }

    func unmount() throws {
        let result = try harness.extentfs(["umount", mountPoint], timeout: 300)
        if !result.succeeded {
            harness.forceUnmount(mountPoint)
            throw HarnessError("umount of \(mountPoint) failed: \(result)\(logTail())")
        }
        if isMounted {
            harness.forceUnmount(mountPoint)
            throw HarnessError("`extentfs umount` returned 0 but \(mountPoint) is still mounted")
        }
    }

    /// fsck must exit 0 and say the image is clean.
    func requireClean(_ context: String = "") throws {
        let result = try fsck()
        let output = result.stdout + result.stderr
        // "clean" as a word: "unclean" does not count.
        let saysClean = output.range(of: "(^|[^A-Za-z])clean([^A-Za-z]|$)", options: .regularExpression) != nil
        guard result.succeeded, saysClean else {
            throw HarnessError("fsck \(context.isEmpty ? "" : "(\(context)) ")is not clean: \(result)")
        }
    }

    /// Unmount, require a clean fsck, mount again: everything must have reached the image.
    func remountChecked(_ context: String = "") throws {
        try unmount()
        try requireClean(context)
        try mount()
    }

    /// Best effort, for defers: leaves nothing mounted.
    func cleanUp() {
        for point in [mountPoint] + extraMountPoints where MountTable.isMounted(point) {
            let result = try? harness.extentfs(["umount", point], timeout: 60)
            if result?.succeeded != true || MountTable.isMounted(point) {
                harness.forceUnmount(point)
            }
        }
    }

    /// The end of the current daemon log, to explain a failure.
    func logTail(lines: Int = 30) -> String {
        guard let currentLog, let text = try? String(contentsOfFile: currentLog, encoding: .utf8), !text.isEmpty else {
            return ""
        }
        let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
        return "\n  daemon log (\(currentLog)):\n    " + tail.joined(separator: "\n    ")
    }
}
