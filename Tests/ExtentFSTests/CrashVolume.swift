import Foundation
import SystemPackage
@testable import ExtentFS

/// Where a crash volume's image lives: a local file, or an NBD export (CrashNBDExport) whose
/// server keeps writes in a volatile cache until a flush, in the given mode.
enum CrashBacking {
    case file
    case nbd(CrashNBDExport.ServerCache)
}

/// A small sparse image in its own temporary directory, formatted, snapshotted as mkfs left it
/// (the base every crash image is rebuilt from) and mounted with a recorder on its backing store.
/// On NBD the engine reaches the image through the URI only, and the server's durable image is
/// copied at every flush (`serverCopies`). Removes its directory (and stops its server) when done.
final class CrashVolume {
    let directory: String
    /// What the engine mounts: the image file, or the export's URI.
    let image: String
    let blockSize: Int
    let base: ImageSnapshot
    let recorder: CrashRecorder
    let runner: CrashWorkloadRunner
    /// On NBD: the export, and the server's durable image at every flush.
    let export: CrashNBDExport?
    let serverCopies: CrashServerCopies?

    init(blockSize: Int, failing fault: CrashRecorder.Fault? = nil, backing: CrashBacking = .file) throws {
        var template = Array("\(CrashTestSettings.scratchDirectory)/extentfs-crash-XXXXXX".utf8CString)
        directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        self.blockSize = blockSize
        recorder = CrashRecorder(failing: fault)
        var options = CrashVolume.mountOptions
        switch backing {
        case .file:
            image = directory + "/disk.img"
            var format = FormatOptions()
            format.blockSize = blockSize
            format.size = CrashTestSettings.imageBytes
            try Volume.format(image: image, options: format)
            base = try ImageSnapshot(path: image)
            export = nil
            serverCopies = nil
            options.storeInterceptor = recorder
        case .nbd(let cache):
            let export = try CrashNBDExport(directory: directory, blockSize: blockSize, cache: cache)
            image = export.uri
            base = try ImageSnapshot(path: export.file)
            let copies = CrashServerCopies(recording: recorder, file: export.file)
            self.export = export
            serverCopies = copies
            options.storeInterceptor = copies
        }
        let fs = try FileSystem.mount(image: image, options: options)
        runner = CrashWorkloadRunner(fs: fs, recorder: recorder, blockSize: blockSize)
    }

    /// Single-threaded: no background commit (only the workload's calls write) and a cache that
    /// never needs writeback for room.
    static var mountOptions: MountOptions {
        var options = MountOptions()
        options.cacheBytes = CrashTestSettings.cacheBytes
        options.commitInterval = 3600
        return options
    }

    /// For checking a recovered image: it only reads, so the smallest cache does. (Also bounds
    /// what the engine leaks per mount today: the memory of pages still cached when a volume is
    /// unmounted is never freed, and a long run mounts thousands of images.)
    static var checkMountOptions: MountOptions {
        var options = mountOptions
        options.cacheBytes = 256 << 10
        return options
    }

    /// A path in the volume's directory for a rebuilt image.
    func scratch(_ name: String) -> String { directory + "/" + name }

    deinit {
        runner.abandon()
        export?.server.stop()
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for name in names { unlink(directory + "/" + name) }
        }
        rmdir(directory)
    }
}

/// Mounts a recovered image (no recorder), runs the crash checks, unmounts and runs fsck again:
/// the findings of all of it. `fsckFirst`: fsck the image before mounting it (a crash image);
/// after a fault, the image is mounted first (its log replayed) and checked after.
func checkRecoveredImage(_ image: String, model: CrashModel, crashAfter: Int, fsckFirst: Bool) -> [CrashFinding] {
    var findings: [CrashFinding] = []
    func fsck(_ when: String) {
        do {
            for problem in try Volume.check(image: image) {
                // The key without numbers: the same problem at another inode or block is the same bug.
                let key = "fsck \(when): " + problem.replacingOccurrences(of: "[0-9]+", with: "N", options: .regularExpression)
                findings.append(CrashFinding(key: key, message: "fsck \(when): \(problem)"))
            }
        } catch {
            findings.append(CrashFinding(key: "fsck \(when) threw", message: "fsck \(when) could not read the image: \(error)"))
        }
    }
    if fsckFirst { fsck("before mount") }
    let fs: FileSystem
    do {
        fs = try FileSystem.mount(image: image, options: CrashVolume.checkMountOptions)
    } catch {
        let key = "mount failed: " + "\(error)".replacingOccurrences(of: "[0-9]+", with: "N", options: .regularExpression)
        findings.append(CrashFinding(key: key, message: "mount failed: \(error)"))
        return findings
    }
    findings += CrashChecker.check(fs: fs, model: model, crashAfter: crashAfter)
    do {
        try fs.unmount()
    } catch {
        findings.append(CrashFinding(key: "unmount failed", message: "unmount of the recovered volume failed: \(error)"))
        return findings
    }
    fsck("after mount and unmount")
    return findings
}
