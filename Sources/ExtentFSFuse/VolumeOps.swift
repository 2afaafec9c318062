import CFuse
import ExtentFS

func installVolumeOps(_ ops: inout fuse_lowlevel_ops) {
    ops.`init` = { _, connection in
        cfuse_conn_configure(connection, maxTransferBytes)
    }
    ops.destroy = { _ in
        // Nothing to do here: serve() unmounts the engine once the session loop has returned.
    }
    ops.statfs = { req, _ in
        let statistics = Server.of(req).fileSystem.statistics()
        var result = statvfs()
        result.f_bsize = UInt(statistics.blockSize)
        result.f_frsize = UInt(statistics.blockSize)
        result.f_blocks = UInt(statistics.totalBlocks)
        result.f_bfree = UInt(statistics.freeBlocks)
        result.f_bavail = UInt(statistics.availableBlocks)
        result.f_files = UInt(statistics.totalInodes)
        result.f_ffree = UInt(statistics.freeInodes)
        result.f_favail = UInt(statistics.freeInodes)
        result.f_namemax = UInt(statistics.maxNameLength)
        fuse_reply_statfs(req, &result)
    }
}

/// Every operation extentfs serves.
func lowLevelOperations() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()
    installVolumeOps(&ops)
    installEntryOps(&ops)
    installFileOps(&ops)
    installDirectoryOps(&ops)
    installXattrOps(&ops)
    installSpaceOps(&ops)
    installIoctlOps(&ops)
    return ops
}
