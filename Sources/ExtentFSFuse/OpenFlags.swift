import CFuse
import ExtentFS

/// The open(2) flags a file was opened with. FUSE_IOCTL carries the file handle chosen at open
/// but not the flags (libfuse leaves fi->flags 0), so open and create keep the flags in the
/// handle, which extentfs has no other use for. An fcntl(F_SETFL) later is not seen: only the
/// access mode, which cannot change, is trustworthy; O_APPEND is as it was at open.
struct OpenFlags {
    var rawValue: Int32

    /// Keeps `fi->flags` in `fi->fh` for the requests that carry only the handle.
    static func remember(in fi: UnsafeMutablePointer<fuse_file_info>?) {
        fi?.pointee.fh = UInt64(UInt32(bitPattern: cfuse_fi_flags(fi)))
    }

    /// What `remember` kept in the handle of the file a request came through.
    init(handleOf fi: UnsafeMutablePointer<fuse_file_info>?) {
        rawValue = Int32(truncatingIfNeeded: fi?.pointee.fh ?? 0)
    }

    init(rawValue: Int32) { self.rawValue = rawValue }

    var isReadable: Bool { rawValue & O_ACCMODE != O_WRONLY && rawValue & openPath == 0 }
    var isWritable: Bool { rawValue & O_ACCMODE == O_WRONLY || rawValue & O_ACCMODE == O_RDWR }
    var isAppend: Bool { rawValue & O_APPEND != 0 }
    /// O_DIRECT: the kernel bypasses its cache for this file (direct_io) and so does the engine.
    var isDirect: Bool { rawValue & openDirect != 0 }
}

let openDirect = HiddenOpenFlags.direct
let openPath = HiddenOpenFlags.path
