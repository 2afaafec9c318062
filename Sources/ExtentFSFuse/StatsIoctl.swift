import CExtentFSIoctl
import CFuse
import CFuseTransport
import ExtentFS
import SystemPackage

/// EXTENTFS_IOC_STATS and STATS2 (extentfs_ioctl.h): the engine's counters and the transport's
/// request counts, for `extentfs stats`. Answered on any inode, also once the volume is shut down
/// (the state and its reason are what a user then wants to see); reading only counters, it takes
/// no lock a request holds.
func replyStatistics(_ req: fuse_req_t?, outputSize: Int) {
    guard outputSize >= MemoryLayout<extentfs_stats>.size else { return replyError(req, Errno.invalidArgument) }
    let engine = Server.of(req).fileSystem.counters()
    guard var stats = statistics(engine, version: UInt32(EXTENTFS_STATS_VERSION)) else { return replyError(req, Errno.ioError) }
    replyIoctl(req, &stats)
}

/// EXTENTFS_IOC_STATS2: version 1's counters, then those version 2 added.
func replyStatisticsVersion2(_ req: fuse_req_t?, outputSize: Int) {
    guard outputSize >= MemoryLayout<extentfs_stats2>.size else { return replyError(req, Errno.invalidArgument) }
    let engine = Server.of(req).fileSystem.counters()
    guard let base = statistics(engine, version: UInt32(EXTENTFS_STATS2_VERSION)) else { return replyError(req, Errno.ioError) }
    var stats = extentfs_stats2()
    stats.base = base
    stats.written_through_bytes = engine.writtenThroughBytes
    replyIoctl(req, &stats)
}

private func replyIoctl<Reply>(_ req: fuse_req_t?, _ reply: inout Reply) {
    withUnsafeBytes(of: &reply) { bytes in
        _ = fuse_reply_ioctl(req, 0, bytes.baseAddress, bytes.count)
    }
}

/// Version 1's struct, its version field set to `version`; nil if the two headers' request
/// tables disagree (logged).
private func statistics(_ engine: EngineStatistics, version: UInt32) -> extentfs_stats? {
    var stats = extentfs_stats()
    stats.version = version
    stats.shut_down = engine.shutdownReason == nil ? 0 : 1
    stats.page_cache_hits = engine.pageCacheHits
    stats.page_cache_misses = engine.pageCacheMisses
    stats.cached_bytes = engine.cachedBytes
    stats.dirty_bytes = engine.dirtyBytes
    stats.cache_budget_bytes = engine.cacheBudgetBytes
    stats.written_back_bytes = engine.writtenBackBytes
    stats.writeback_errors = engine.writebackErrors
    stats.log_commits = engine.logCommits
    stats.checkpoints = engine.checkpoints
    stats.log_used_bytes = engine.logUsedBytes
    stats.log_capacity_bytes = engine.logCapacityBytes
    // The transport's table and the ioctl's arrays are declared in two headers: one size, or
    // the copy below would run past the struct.
    guard MemoryLayout.size(ofValue: stats.requests) == Int(EXTENTFS_REQUEST_KINDS) * MemoryLayout<UInt64>.size else {
        log.error("EXTENTFS_REQUEST_KINDS and EXTENTFS_STATS_REQUEST_KINDS differ")
        return nil
    }
    withUnsafeMutableBytes(of: &stats.requests) { requests in
        withUnsafeMutableBytes(of: &stats.request_errors) { errors in
            fuse_transport_request_counts(requests.bindMemory(to: UInt64.self).baseAddress,
                                          errors.bindMemory(to: UInt64.self).baseAddress)
        }
    }
    if let reason = engine.shutdownReason {
        withUnsafeMutableBytes(of: &stats.shutdown_reason) { buffer in
            // Cut to fit, always NUL-terminated (the struct starts zeroed).
            let bytes = Array(reason.utf8.prefix(buffer.count - 1))
            buffer.copyBytes(from: bytes)
        }
    }
    return stats
}
