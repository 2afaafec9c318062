import ExtentFS

/// Where each open directory's stream ends (FileSystem.directoryEndCookie): taken at opendir,
/// again when the stream is rewound (a READDIR from offset 0: rewinddir must show the directory
/// as it is now), and dropped at releasedir. The handle is a number in this table rather than a
/// pointer, so that no handle a request carries can make the daemon touch freed memory.
final class DirectoryStreams: @unchecked Sendable {
    private let mutex = Mutex()
    private var ends: [UInt64: UInt64] = [:]
    private var lastHandle: UInt64 = 0

    /// A new stream ending at `end`; its handle.
    func open(endingAt end: UInt64) -> UInt64 {
        mutex.withLock {
            lastHandle += 1
            ends[lastHandle] = end
            return lastHandle
        }
    }

    /// Where the stream ends; no end for a handle this table does not know.
    func end(of handle: UInt64) -> UInt64 {
        mutex.withLock { ends[handle] ?? .max }
    }

    func rewind(_ handle: UInt64, endingAt end: UInt64) {
        mutex.withLock {
            if ends[handle] != nil { ends[handle] = end }
        }
    }

    func close(_ handle: UInt64) {
        _ = mutex.withLock { ends.removeValue(forKey: handle) }
    }
}
