import CFuse
import ExtentFS
import SystemPackage

/// Runs one request's engine work. The body replies on success as its last step; anything it
/// throws becomes the one error reply, so every request is answered exactly once. A read-only
/// volume the kernel has remounted read-write becomes writable here (Remount.swift).
@inline(__always)
func handle(_ req: fuse_req_t?, _ body: (FileSystem) throws -> Void) {
    do {
        let server = Server.of(req)
        try server.followingRemount { try body(server.fileSystem) }
    } catch {
        replyError(req, error)
    }
}

/// `handle` on a space worker (SpaceWorkers.swift), for operations that wait on the kernel. The
/// body runs after the handler has returned: it may use only what it captured by value.
func handleOnSpaceWorker(_ req: fuse_req_t?, _ body: @escaping (FileSystem) throws -> Void) {
    Server.of(req).spaceWorkers.submit { handle(req, body) }
}

func replyError(_ req: fuse_req_t?, _ error: Error) {
    fuse_reply_err(req, errnoValue(for: error))
}

/// Engine errors carry the errno the caller should see; anything else is a bug or an I/O
/// failure the engine did not classify, so it is logged and reported as EIO.
func errnoValue(for error: Error) -> Int32 {
    switch error {
    case let errno as Errno:
        return errno.rawValue
    case let error as ExtentFSError:
        return error.errno.rawValue
    default:
        log.error("unexpected engine error: \(error)")
        return Errno.ioError.rawValue
    }
}

/// Replies with a new lookup reference. If the kernel never receives it (the request was
/// interrupted), the reference is dropped again so the inode is not pinned forever.
func replyEntry(_ req: fuse_req_t?, _ fs: FileSystem, _ attributes: FileAttributes) {
    var entry = entryParam(attributes)
    if fuse_reply_entry(req, &entry) != 0 {
        fs.forget(attributes.ino, count: 1)
    }
}

func replyAttributes(_ req: fuse_req_t?, _ attributes: FileAttributes) {
    var st = statBuffer(attributes)
    fuse_reply_attr(req, &st, attributeTimeout)
}

func replyOK(_ req: fuse_req_t?) {
    fuse_reply_err(req, 0)
}

/// Names arrive NUL-terminated; the engine takes raw bytes.
func nameBytes(_ name: UnsafePointer<CChar>?) -> [UInt8] {
    guard let name else { return [] }
    return Array(UnsafeRawBufferPointer(start: name, count: strlen(name)))
}

/// A NUL-terminated copy of `name` for libfuse, on the stack when it is short.
func withCName<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: name.count + 1) { buffer in
        name.withUnsafeBytes { bytes in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
        }
        buffer[name.count] = 0
        return body(UnsafePointer(buffer.baseAddress!))
    }
}
