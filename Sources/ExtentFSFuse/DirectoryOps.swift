import CFuse
import ExtentFS
import ExtentFSCore
import SystemPackage

func installDirectoryOps(_ ops: inout fuse_lowlevel_ops) {
    ops.opendir = { req, ino, fi in
        handle(req) { fs in
            let streams = Server.of(req).directoryStreams
            let stream = streams.open(endingAt: try fs.directoryEndCookie(ino))
            fi?.pointee.fh = stream
            if fuse_reply_open(req, fi) != 0 {
                streams.close(stream)  // the kernel never saw the open, so no RELEASEDIR will come
            }
        }
    }
    ops.readdir = { req, ino, size, offset, fi in
        readDirectory(req, ino, size: size, offset: offset, stream: fi?.pointee.fh, plus: false)
    }
    ops.readdirplus = { req, ino, size, offset, fi in
        readDirectory(req, ino, size: size, offset: offset, stream: fi?.pointee.fh, plus: true)
    }
    ops.releasedir = { req, _, fi in
        if let stream = fi?.pointee.fh { Server.of(req).directoryStreams.close(stream) }
        replyOK(req)
    }
    ops.fsyncdir = { req, ino, _, _ in
        handle(req) { fs in
            try fs.fsyncdir(ino)
            replyOK(req)
        }
    }
}

/// Fills one reply buffer of the size the kernel asked for. The engine stops at the first
/// entry that does not fit, so with `plus` exactly the entries in the buffer hold a lookup
/// reference; if the reply never reaches the kernel those references are dropped again. Entries
/// past the end of the `stream` are left out (DirectoryStreams.swift).
private func readDirectory(_ req: fuse_req_t?, _ ino: InodeNumber, size: Int, offset: off_t, stream: UInt64?,
                           plus: Bool) {
    guard offset >= 0 else { return replyError(req, Errno.invalidArgument) }
    handle(req) { fs in
        var end = UInt64.max
        if let stream {
            let streams = Server.of(req).directoryStreams
            if offset == 0 {
                end = try fs.directoryEndCookie(ino)
                streams.rewind(stream, endingAt: end)
            } else {
                end = streams.end(of: stream)
            }
        }
        try withUnsafeTemporaryAllocation(byteCount: max(size, 1), alignment: 8) { buffer in
            let start = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
            var used = 0
            var referenced: [InodeNumber] = []
            var failure: Error?
            do {
                try fs.readdir(ino, after: UInt64(offset), before: end, plus: plus) { entry, attributes in
                    let isDotOrDotDot = entry.name == dot || entry.name == dotDot
                    let needed = withCName(entry.name) { name in
                        addEntry(req, start + used, size - used, name, entry, plus: plus, attributes,
                                 linksInode: !isDotOrDotDot)
                    }
                    guard needed <= size - used else { return false }
                    used += needed
                    if plus && !isDotOrDotDot && attributes != nil { referenced.append(entry.ino) }
                    return true
                }
            } catch {
                failure = error
            }
            // Entries already placed are worth sending; the next READDIR meets the error again.
            if let failure {
                guard used > 0 else { throw failure }
                log.warning("readdir of inode \(ino) stopped early: \(failure)")
            }
            if fuse_reply_buf(req, start, used) != 0 {
                for child in referenced { fs.forget(child, count: 1) }
            }
        }
    }
}

private let dot: [UInt8] = [0x2E]
private let dotDot: [UInt8] = [0x2E, 0x2E]

/// Returns the bytes the entry needs; it was written only if that is no more than `room`.
private func addEntry(_ req: fuse_req_t?, _ position: UnsafeMutablePointer<CChar>, _ room: Int,
                      _ name: UnsafePointer<CChar>, _ entry: DirectoryEntry, plus: Bool,
                      _ attributes: FileAttributes?, linksInode: Bool) -> Int {
    let cookie = off_t(clamping: entry.nextCookie)
    guard plus else {
        var st = stat()
        st.st_ino = UInt(entry.ino)
        st.st_mode = entry.type.rawValue
        return fuse_add_direntry(req, position, room, name, &st, cookie)
    }
    var param = fuse_entry_param()
    if let attributes {
        param = entryParam(attributes)
    } else {
        param.attr.st_ino = UInt(entry.ino)
        param.attr.st_mode = entry.type.rawValue
    }
    // Node id 0 tells the kernel to link nothing: for "." and "..", and for entries the engine
    // sent without attributes, no reference was taken.
    if !linksInode || attributes == nil { param.ino = 0 }
    return fuse_add_direntry_plus(req, position, room, name, &param, cookie)
}
