import ArgumentParser
import ExtentFS
import ExtentFSExercise
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

struct ExerciseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exercise",
        abstract: "Run random file operations against an in-memory model, as fsx does (exit 1 on a failure).",
        discussion: """
            Reads, writes, mapped reads and writes, truncates, every fallocate mode, clone, dedupe, \
            copy_file_range, SEEK_DATA/SEEK_HOLE, extent maps, fsync, reopen and remount, over a few \
            files on a fresh volume, each checked against the model. In-process (the default) it drives \
            the engine directly; with --mount it makes an image, mounts it with this binary and drives \
            the files through the kernel (collapse, insert, unshare, clone, dedupe and maps through the \
            extentfs ioctls). On a failure it prints the log, writes a replay file and shrinks the \
            sequence to a short one that still fails.
            """)

    @Flag(help: "Drive the engine in this process (the default).")
    var inProcess = false

    @Flag(help: "Drive files on a real mount made with this binary.")
    var mount = false

    @Option(help: ArgumentHelp("Drive files on a real mount made with this extentfs binary.", valueName: "path"))
    var mountBinary: String?

    @Option(help: "Block size in bytes: a power of two from 512 to 65536.")
    var blockSize: ByteSize = ByteSize(bytes: 4096)

    @Option(help: "Seed of the random sequence (default: a new one, printed).")
    var seed: UInt64?

    @Option(help: "How many operations to run.")
    var ops: Int = 10000

    @Option(help: "How many files the operations spread over.")
    var files: Int = 2

    @Option(help: "Page-cache budget: small, so that reclaim runs all the time.")
    var cacheSize = ByteSize(bytes: 256 << 10)

    @Option(help: "The largest size the generator lets a file reach.")
    var maxFileSize = ByteSize(bytes: 2 << 20)

    @Option(help: "Compare whole files every this many operations (touched ranges are compared after each).")
    var fullCheckEvery: Int = 128

    @Option(help: "Time limit for shrinking a failing sequence, in seconds.")
    var shrinkSeconds: Double = 120

    @Option(help: ArgumentHelp("Run the operations of a replay file instead of random ones.", valueName: "file"))
    var replay: String?

    @Option(help: ArgumentHelp("Where to write the replay file on a failure (default: ./extentfs-exercise-MODE-bsB-seedS.json).", valueName: "file"))
    var replayOut: String?

    @Flag(help: "Leave out what reaches a mount only through the extentfs ioctls (collapse, insert, unshare, clone, dedupe, map).")
    var opsWithoutIoctls = false

    @Option(help: ArgumentHelp("Comma-separated operation kinds to leave out: \(OperationKind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "kinds"))
    var leaveOut: [String] = []

    @Option(help: "In-process: threads that read random ranges all the time, racing the checked operations as kernel readahead does through a mount (runs are then not deterministic).")
    var backgroundReaders: Int?

    @Flag(help: "Print how often each kind of operation succeeded and how often it was refused.")
    var stats = false

    func validate() throws {
        let bytes = blockSize.bytes
        guard (512...65536).contains(bytes), bytes & (bytes - 1) == 0 else {
            throw ValidationError("block size \(bytes) is not a power of two from 512 to 65536")
        }
        guard files >= 1, files <= 16 else { throw ValidationError("--files must be from 1 to 16") }
        guard ops >= 0 else { throw ValidationError("--ops must not be negative") }
        guard maxFileSize.bytes >= 4 * bytes else { throw ValidationError("--max-file-size must be at least four blocks") }
        guard (backgroundReaders ?? 0) >= 0, (backgroundReaders ?? 0) <= 16 else { throw ValidationError("--background-readers must be from 0 to 16") }
        guard (backgroundReaders ?? 0) == 0 || !(mount || mountBinary != nil) else {
            throw ValidationError("--background-readers is for in-process runs (through a mount, the kernel's readahead races already)")
        }
        guard fullCheckEvery >= 1 else { throw ValidationError("--full-check-every must be at least 1") }
        guard !(inProcess && (mount || mountBinary != nil)) else {
            throw ValidationError("--in-process and --mount/--mount-binary exclude one another")
        }
        _ = try leftOutKinds()
    }

    private func leftOutKinds() throws -> Set<OperationKind> {
        var kinds: Set<OperationKind> = opsWithoutIoctls ? OperationKind.throughIoctls : []
        for name in leaveOut.flatMap({ $0.split(separator: ",") }) {
            guard let kind = OperationKind(rawValue: String(name)) else { throw ValidationError("unknown operation kind \"\(name)\"") }
            kinds.insert(kind)
        }
        return kinds
    }

    func run() throws {
        // Line by line even into a pipe: an engine bug may crash the process, and the log up to
        // there is what tells what happened.
        setvbuf(stdout, nil, _IOLBF, 0)
        var settings: ExerciseSettings
        var replayFile: ReplayFile?
        if let replay {
            let file: ReplayFile
            do {
                file = try ReplayFile.read(from: replay)
            } catch {
                throw failure("exercise", error)
            }
            replayFile = file
            settings = ExerciseSettings(seed: file.seed, blockSize: file.blockSize, operations: file.operations.count)
            settings.files = file.files
            settings.cacheBytes = file.cacheBytes
            settings.mode = mountRequested ? "mount" : inProcess ? "in-process" : file.mode
            settings.backgroundReaders = backgroundReaders ?? file.backgroundReaders ?? 0
        } else {
            settings = ExerciseSettings(seed: seed ?? randomSeed(), blockSize: Int(blockSize.bytes), operations: ops)
            settings.files = files
            settings.cacheBytes = Int(clamping: cacheSize.bytes)
            settings.mode = mountRequested ? "mount" : "in-process"
            settings.backgroundReaders = backgroundReaders ?? 0
        }
        settings.maxFileBytes = Int(clamping: maxFileSize.bytes)
        settings.leaveOut = try leftOutKinds()
        settings.fullCheckInterval = fullCheckEvery
        settings.shrinkSeconds = shrinkSeconds
        settings.replayPath = replayOut

        let makeTarget = targetFactory(settings)
        print("exercise: \(replay.map { "replaying \($0): " } ?? "")\(settings.operations) operations, seed \(settings.seed), " +
              "block size \(settings.blockSize), \(settings.files) files, cache \(ByteSize(bytes: UInt64(settings.cacheBytes))), \(settings.mode)" +
              (settings.backgroundReaders > 0 ? ", \(settings.backgroundReaders) background readers" : ""))
        let report: (String) -> Void = { line in print(line) }
        let outcome = replayFile.map { Exercise.replay($0, settings: settings, makeTarget: makeTarget, report: report) }
            ?? Exercise.run(settings, makeTarget: makeTarget, report: report)
        if stats { print("exercise: succeeded/refused: \(outcome.statisticsLine)") }
        let rate = outcome.seconds > 0 ? Int(Double(outcome.operationsRun) / outcome.seconds) : 0
        let timing = String(Double(Int(outcome.seconds * 10)) / 10)
        if outcome.passed {
            print("exercise: \(settings.operations) operations, seed \(settings.seed), block size \(settings.blockSize): passed " +
                  "in \(timing) s (\(rate) ops/s, \(settings.mode))")
        } else {
            print("exercise: \(settings.operations) operations, seed \(settings.seed), block size \(settings.blockSize): FAILED " +
                  "at operation \(outcome.failure!.index) (\(settings.mode))")
            throw ExitCode.failure
        }
    }

    private var mountRequested: Bool { mount || mountBinary != nil }

    private func targetFactory(_ settings: ExerciseSettings) -> TargetFactory {
        if settings.mode == "mount" {
            var configuration = MountTarget.Configuration(binary: mountBinary.map(absolutePath) ?? executablePath(),
                                                          blockSize: settings.blockSize, files: settings.files)
            configuration.cacheBytes = settings.cacheBytes
            return { try MountTarget(configuration) }
        }
        var configuration = EngineTarget.Configuration(blockSize: settings.blockSize, files: settings.files)
        configuration.cacheBytes = settings.cacheBytes
        configuration.backgroundReaders = settings.backgroundReaders
        configuration.backgroundReadSpan = UInt64(settings.maxFileBytes)
        return { try EngineTarget(configuration) }
    }

    private func randomSeed() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return UInt64.random(in: 1...UInt64(1) << 32, using: &generator)
    }
}
