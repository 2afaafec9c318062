import CFuse
import ExtentFS
import ExtentFSCore

/// An O_DIRECT write leaves stale pages in the kernel's cache when it is asynchronous
/// (io_submit, io_uring): the kernel's direct write path drops the range before sending the
/// WRITE, and again after a synchronous one, but not when an asynchronous one completes
/// (generic_file_direct_write skips it for -EIOCBQUEUED, and FUSE's completion does not do it).
/// A buffered read that ran while the write was in flight cached the old data, and every read
/// after the write completed saw it (xfstests generic/451). So the daemon drops the range
/// itself, before it replies: the write is not complete until no cached page of it is stale.
///
/// Not on the loop thread that served the WRITE: dropping pages waits for their page locks,
/// and whoever holds one (a buffered reader, a page fault) waits for a READ that needs a free
/// loop thread; sixteen such waits would leave none. A worker waits instead and replies.
///
/// Only for a WRITE the kernel's direct path sent: those carry the writer's lock owner
/// (FUSE_WRITE_LOCKOWNER, from fuse_direct_io). A buffered WRITE never does, and must never
/// wait here: its writer holds the pages' locks until the reply (fuse_perform_write), also when
/// it is the buffered rest of an O_DIRECT write (direct_write_fallback), whose open flags say
/// O_DIRECT all the same; a writeback WRITE (FUSE_WRITE_CACHE) neither.
extension Server {
    func replyToWrite(_ req: fuse_req_t?, _ fi: UnsafeMutablePointer<fuse_file_info>?, ino: InodeNumber,
                      offset: UInt64, count: Int) {
        guard let fi, fi.pointee.lock_owner != 0, fi.pointee.writepage == 0, count > 0 else {
            fuse_reply_write(req, count)
            return
        }
        let written = KernelRange(ino: ino, offset: offset, length: UInt64(count))
        directWriteWorkers.submit { [self] in
            invalidateKernelCache(written)
            fuse_reply_write(req, count)
        }
    }
}
