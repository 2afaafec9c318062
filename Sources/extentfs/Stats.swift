import ArgumentParser
import CExtentFSIoctl
import ExtentFSFuse
import SystemPackage

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the daemon's counters for a mounted volume.",
        discussion: """
            Read through the EXTENTFS_IOC_STATS ioctl (extentfs_ioctl.h), so any user who can open \
            the mount point may run it. One "NAME VALUE" line per counter, then one line per kind \
            of FUSE request the kernel sent: "request OPCODE COUNT errors ERRORS". The counters \
            start at zero at mount; bytes are bytes.
            """)

    @Argument(help: ArgumentHelp("The mount point (or any file or directory of the mount).", valueName: "MOUNTPOINT"))
    var mountpoint: String

    func run() throws {
        try runningSpaceCommand("stats") {
            let target = try SpaceFile.open(mountpoint, .readOnly)
            defer { target.close() }
            try target.requireExtentFSMount()
            // Version 2 from a daemon that knows it, else version 1 (no written-through-bytes).
            var stats2 = extentfs_stats2()
            if try target.ioctlIfKnown(ExtentFSIoctl.stats2, &stats2) {
                try Stats.requireVersion(stats2.base.version, EXTENTFS_STATS2_VERSION)
                print(Stats.render(stats2.base, writtenThroughBytes: stats2.written_through_bytes), terminator: "")
                return
            }
            var stats = extentfs_stats()
            try target.ioctl(ExtentFSIoctl.stats, &stats)
            try Stats.requireVersion(stats.version, EXTENTFS_STATS_VERSION)
            print(Stats.render(stats, writtenThroughBytes: nil), terminator: "")
        }
    }

    private static func requireVersion(_ version: UInt32, _ expected: Int32) throws {
        guard version == UInt32(expected) else {
            throw CommandFailure("the daemon reports statistics version \(version) where this extentfs expects \(expected)")
        }
    }

    /// `writtenThroughBytes`: nil from a daemon of version 1, which does not count them.
    static func render(_ stats: extentfs_stats, writtenThroughBytes: UInt64?) -> String {
        var stats = stats
        var lines: [(String, String)] = []
        if stats.shut_down != 0 {
            let reason = withUnsafeBytes(of: &stats.shutdown_reason) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            lines.append(("state", "shut down: \(reason)"))
        } else {
            lines.append(("state", "running"))
        }
        var counters: [(String, UInt64)] = [
            ("page-cache-hits", stats.page_cache_hits), ("page-cache-misses", stats.page_cache_misses),
            ("cached-bytes", stats.cached_bytes), ("dirty-bytes", stats.dirty_bytes),
            ("cache-budget-bytes", stats.cache_budget_bytes), ("written-back-bytes", stats.written_back_bytes)]
        if let writtenThroughBytes { counters.append(("written-through-bytes", writtenThroughBytes)) }
        counters += [("writeback-errors", stats.writeback_errors), ("log-commits", stats.log_commits),
                     ("checkpoints", stats.checkpoints), ("log-used-bytes", stats.log_used_bytes),
                     ("log-capacity-bytes", stats.log_capacity_bytes)]
        lines += counters.map { ($0.0, String($0.1)) }
        var text = lines.map { $0.0.padding(to: 22) + $0.1 + "\n" }.joined()
        let requests = withUnsafeBytes(of: &stats.requests) { Array($0.bindMemory(to: UInt64.self)) }
        let errors = withUnsafeBytes(of: &stats.request_errors) { Array($0.bindMemory(to: UInt64.self)) }
        for opcode in requests.indices where requests[opcode] > 0 || errors[opcode] > 0 {
            text += "request " + opcodeName(opcode).padding(to: 16) + String(requests[opcode]).padding(to: 12) +
                "errors \(errors[opcode])\n"
        }
        return text
    }

    /// linux/fuse.h's names, without the FUSE_ prefix; the last kind holds every later opcode.
    static func opcodeName(_ opcode: Int) -> String {
        if opcode == Int(EXTENTFS_STATS_REQUEST_KINDS) - 1 { return "OTHER" }
        return opcodeNames[opcode] ?? "OPCODE_\(opcode)"
    }

    private static let opcodeNames: [Int: String] = [
        1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK", 6: "SYMLINK", 8: "MKNOD",
        9: "MKDIR", 10: "UNLINK", 11: "RMDIR", 12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ",
        16: "WRITE", 17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR", 22: "GETXATTR",
        23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR", 28: "READDIR",
        29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW", 34: "ACCESS",
        35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL", 40: "POLL",
        41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE", 44: "READDIRPLUS", 45: "RENAME2",
        46: "LSEEK", 47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS",
        51: "TMPFILE", 52: "STATX",
    ]
}

private extension String {
    func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
