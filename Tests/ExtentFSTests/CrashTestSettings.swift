import Foundation

/// How much the crash and fault tests do. The defaults keep `swift test` short (a debug build on
/// two cores); `scripts/crash-test.sh` raises them through the environment:
///
/// - EXTENTFS_CRASH_SEEDS: random workloads per block size (default 3; seeds FIRST...FIRST+N-1)
/// - EXTENTFS_CRASH_FIRST_SEED: the first random seed (default 1)
/// - EXTENTFS_CRASH_OPS: steps per random workload (default 60)
/// - EXTENTFS_CRASH_SUBSETS: random subsets of the in-flight writes per crash point (default 3),
///   besides "none of them" and "all of them"
/// - EXTENTFS_FAULT_LIMIT: faults per workload and block size (default 80, a seeded sample of
///   every write and flush; 0 = every one)
/// - EXTENTFS_CRASH_BLOCK_SIZES: e.g. "4096" (default "1024,4096,65536")
/// - EXTENTFS_CRASH_WORKLOAD: run only workloads whose name contains this
/// - EXTENTFS_CRASH_TRACE=1: print each workload's steps, stamped with the flushes before them
/// - EXTENTFS_FAULT_ONLY: inject only this fault, e.g. "write#30" or "flush#3", or as failure
///   messages name it, "write #30" (to reproduce one; whether or not EXTENTFS_FAULT_LIMIT's
///   sample holds it)
/// - EXTENTFS_CRASH_DIR: where the images go (default /dev/shm when it is writable, else /tmp)
enum CrashTestSettings {
    private static func integer(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? fallback
    }

    static var seeds: Int { integer("EXTENTFS_CRASH_SEEDS", 3) }
    static var firstSeed: Int { integer("EXTENTFS_CRASH_FIRST_SEED", 1) }
    static var randomSteps: Int { integer("EXTENTFS_CRASH_OPS", 60) }
    static var subsetsPerCrashPoint: Int { integer("EXTENTFS_CRASH_SUBSETS", 3) }
    static var faultLimit: Int { integer("EXTENTFS_FAULT_LIMIT", 80) }
    static var blockSizes: [Int] {
        (ProcessInfo.processInfo.environment["EXTENTFS_CRASH_BLOCK_SIZES"] ?? "1024,4096,65536")
            .split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }
    static var trace: Bool { ProcessInfo.processInfo.environment["EXTENTFS_CRASH_TRACE"] == "1" }
    /// Without spaces: messages say "write #30", and a value copied from one must not match nothing.
    static var onlyFault: String? {
        ProcessInfo.processInfo.environment["EXTENTFS_FAULT_ONLY"].map { $0.filter { !$0.isWhitespace } }
    }
    static var workloadFilter: String? { ProcessInfo.processInfo.environment["EXTENTFS_CRASH_WORKLOAD"] }

    /// tmpfs when there is one: the engine's fdatasync and the rebuilt images cost no disk I/O
    /// there, which is most of the time on a disk.
    static var scratchDirectory: String {
        if let directory = ProcessInfo.processInfo.environment["EXTENTFS_CRASH_DIR"] { return directory }
        return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    }

    /// The image: small and sparse, so that rebuilding it at every crash point is cheap.
    static let imageBytes: UInt64 = 32 << 20
    /// Large enough that nothing is written back under memory pressure: only the workload's
    /// own fsync, sync and unmount write, so every run issues the same writes.
    static let cacheBytes = 64 << 20
}
