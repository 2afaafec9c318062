import ArgumentParser
import ExtentFS
import ExtentFSFuse
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount an extentfs image on a directory.",
        discussion: """
            Without -f, returns once the mount is live (exit 0) or has failed (one line on \
            stderr, exit 1); the daemon keeps serving in the background until `extentfs umount`.
            """)

    @Argument(help: ArgumentHelp(imageArgumentHelp))
    var image: String

    @Argument(help: "An existing directory to mount on.")
    var mountpoint: String

    @Flag(name: [.customShort("f"), .long], help: "Serve in the foreground instead of starting a daemon.")
    var foreground = false

    @Option(name: .customShort("o"), help: ArgumentHelp(
        "Comma-separated mount options (may repeat): the VFS options of mount(8) (ro, rw, noatime, relatime, nodev, nosuid, sync, dirsync ...) and FUSE's (allow_other ...); \"ro\" also makes the engine read-only.",
        valueName: "options"))
    var options: [String] = []

    @Flag(help: "Let users other than the one mounting access the mount.")
    var allowOther = false

    @Option(help: "Page-cache memory budget, in bytes or with a K, M, G or T suffix (default: 1/16 of memory, 256M to 1G).")
    var cacheSize = ByteSize(bytes: UInt64(MountOptions.defaultCacheBytes))

    @Option(help: "Metadata memory budget (inodes held in memory and metadata tree nodes), in bytes or with a K, M, G or T suffix (default: 64M). Inodes in use or changed since the last checkpoint stay in memory regardless.")
    var metadataCacheSize = ByteSize(bytes: UInt64(MountOptions.defaultMetadataCacheBytes))

    @OptionGroup var store: StoreArguments

    @Option(help: ArgumentHelp(
        "Where the daemon's log goes (default: discarded). With -f, the log moves there once the mount is live.",
        valueName: "file"))
    var log: String?

    /// Set only on the daemon that a plain `mount` starts: where it reports readiness.
    @Option(help: .hidden)
    var readyFd: Int32?

    func run() throws {
        let standard = StandardMountOptions(options)
        if standard.isRemount {
            return try reportingErrors("mount") { try remount(mountpoint: self.mountpoint, flags: standard.remountFlags) }
        }
        let image = canonicalImage(self.image)
        let mountpoint = absolutePath(self.mountpoint)
        if foreground {
            try serveHere(image: image, mountpoint: mountpoint)
        } else {
            try reportingErrors("mount") {
                try checkMountpoint(mountpoint)
                try startDaemon(image: image, mountpoint: mountpoint, mount: self)
            }
        }
    }

    /// The daemon's own arguments: this command again, in the foreground, reporting on fd 3.
    func daemonArguments(image: String, mountpoint: String, readyFd: Int32) -> [String] {
        var arguments = ["mount", image, mountpoint, "--foreground", "--ready-fd", String(readyFd),
                         "--cache-size", String(cacheSize.bytes),
                         "--metadata-cache-size", String(metadataCacheSize.bytes), "--nbd-timeout", String(store.nbdTimeout)]
        for group in options { arguments += ["-o", group] }
        if allowOther { arguments.append("--allow-other") }
        return arguments
    }

    private func serveHere(image: String, mountpoint: String) throws {
        let ready = ReadyChannel(readyFd)
        if readyFd != nil {
            // A daemon must not keep the directory it was started from busy.
            _ = chdir("/")
        }
        do {
            let logFile = try readyFd == nil ? log.map(openLog) : nil
            try checkMountpoint(mountpoint)
            let standard = StandardMountOptions(options)
            for leftOut in standard.leftOut {
                // To the daemon's log (or the terminal with -f): the mount goes on without it.
                printError("mount", "option \(leftOut.option) left out: \(leftOut.reason)")
            }
            let fileSystem = try mountEngine(image: image, standard: standard)
            try serve(fileSystem: fileSystem, mountpoint: mountpoint, options: fuseOptions(image: image, standard: standard)) {
                if let logFile { redirectStandardError(to: logFile) }
                ready.succeed()
            }
        } catch {
            let text = errorMessage(error)
            ready.fail(text)
            printError("mount", text)
            throw ExitCode.failure
        }
    }

    private func mountEngine(image: String, standard: StandardMountOptions) throws -> FileSystem {
        var engineOptions = MountOptions()
        engineOptions.cacheBytes = Int(clamping: cacheSize.bytes)
        engineOptions.metadataCacheBytes = Int(clamping: metadataCacheSize.bytes)
        engineOptions.readOnly = standard.readOnly
        engineOptions.synchronousDirectories = standard.dirsync
        engineOptions.synchronousAttributes = standard.sync
        engineOptions.store = store.storeOptions
        engineOptions.unmountReportPath = UnmountReport.path(forImage: image)
        if let stale = engineOptions.unmountReportPath { unlink(stale) }
        return try naming(image) { try waitingForFinishingDaemon(image: image) { try FileSystem.mount(image: image, options: engineOptions) } }
    }

    private func fuseOptions(image: String, standard: StandardMountOptions) -> FuseMountOptions {
        var fuseOptions = FuseMountOptions(fsName: image)
        fuseOptions.allowOther = allowOther
        fuseOptions.extraOptions = standard.forFuse
        return fuseOptions
    }
}

func openLog(_ path: String) throws -> FileDescriptor {
    do {
        return try FileDescriptor.open(path, .writeOnly, options: [.create, .append, .closeOnExec],
                                       permissions: [.ownerReadWrite, .groupRead, .otherRead])
    } catch let errno as Errno {
        throw CommandFailure("log file \(path): \(errno)")
    }
}

private func redirectStandardError(to file: FileDescriptor) {
    _ = dup2(file.rawValue, STDERR_FILENO)
    try? file.close()
}
