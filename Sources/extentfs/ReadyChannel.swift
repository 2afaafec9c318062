import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's end of the readiness pipe: exactly one message ("ok" or the error line), then
/// closed, so the waiting parent sees EOF even if the daemon lives on.
final class ReadyChannel {
    private var descriptor: FileDescriptor?

    init(_ rawDescriptor: Int32?) {
        guard let rawDescriptor else { return }
        // Helpers libfuse may run (fusermount3) must not hold the pipe open.
        _ = fcntl(rawDescriptor, F_SETFD, FD_CLOEXEC)
        descriptor = FileDescriptor(rawValue: rawDescriptor)
    }

    func succeed() { send("ok") }

    func fail(_ message: String) { send(message) }

    private func send(_ text: String) {
        guard let descriptor else { return }
        self.descriptor = nil
        _ = try? descriptor.writeAll(text.utf8)
        try? descriptor.close()
    }
}
