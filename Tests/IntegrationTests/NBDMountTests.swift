import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NBDTestServer
import XCTest

/// Real mounts of volumes on NBD exports served by nbdkit (file and memory plugins, Unix socket
/// and TCP on 127.0.0.1), through the CLI with the URI where an image path would go: a tree of
/// files through unmount, fsck and remount; the server killed or stalled mid-workload, which
/// must give EIO within the timeout and never hang; fsck and every fsynced file intact after the
/// server is started again on the same file.
final class NBDMountTests: XCTestCase {
    func testTreeRoundTripOverUnixSocketAndTCP() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        // The third server takes nothing finer than 4 KiB (as qemu-nbd on a 4 KiB-sector disk):
        // the superblock's sectors and the log's header go through whole units.
        let fourKiBUnits = ["blocksize-minimum=4096", "blocksize-error-policy=error"]
        let cases: [(NBDTestServer.Transport, Bool, Int, [String])] = [
            (.unixSocket, true, 4096, []), (.tcp, false, 1024, []), (.unixSocket, false, 4096, fourKiBUnits),
        ]
        for (index, (transport, onFile, blockSize, unitPolicy)) in cases.enumerated() {
            let directory = harness.workDirectory + "/nbd-\(index)"
            let plugin: NBDTestServer.Plugin = onFile ? .file(path: directory + "/export.img", bytes: 256 << 20) : .memory(bytes: 256 << 20)
            let server = try NBDTestServer(plugin, transport: transport, directory: directory,
                                           filters: unitPolicy.isEmpty ? [] : ["blocksize-policy"], parameters: unitPolicy)
            defer { server.stop() }
            let context = "\(onFile ? "file" : "memory") plugin over \(transport), block size \(blockSize)"
                + (unitPolicy.isEmpty ? "" : ", server unit 4 KiB")
            let volume = try harness.makeVolume(blockSize: blockSize, nbdURI: server.uri)
            try volume.mount()
            XCTAssertEqual(MountTable.entry(at: volume.mountPoint)?.source, server.uri, "mount source (\(context))")

            let tree = SampleTree(blockSize: blockSize)
            try tree.build(in: volume.mountPoint)
            let before = try TreeSnapshot.capture(root: volume.mountPoint)
            try volume.remountChecked(context)
            let differences = try TreeSnapshot.capture(root: volume.mountPoint).differences(from: before)
            XCTAssertTrue(differences.isEmpty, "\(context): tree changed across remount:\n  " + differences.joined(separator: "\n  "))
            try tree.verify(in: volume.mountPoint, context)
            try volume.unmount()
            try volume.requireClean(context)
        }
    }

    /// One mount of an export at a time on this host: a second mount and an fsck of the mounted
    /// URI are refused, and umount finds the daemon by the URI in the mount table.
    func testSecondMountOfTheSameExportIsRefused() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let server = try NBDTestServer(.memory(bytes: 64 << 20), transport: .unixSocket, directory: harness.workDirectory + "/nbd")
        defer { server.stop() }
        let volume = try harness.makeVolume(blockSize: 4096, nbdURI: server.uri)
        try volume.mount()
        let second = try volume.attemptMount(at: harness.workDirectory + "/second-mnt")
        XCTAssertFalse(second.succeeded, "a second mount of \(server.uri) succeeded: \(second)")
        XCTAssertTrue(second.stderr.contains("in use"), "the refusal does not say the export is in use: \(second)")
        let checked = try volume.fsck()
        XCTAssertFalse(checked.succeeded, "fsck of a mounted export succeeded: \(checked)")
        try volume.unmount()
        try volume.requireClean()
    }

    /// Under another name (another host would do the same) the lock on this host does not see
    /// the mount; a server that admits one client at a time (nbdkit's limit filter) refuses the
    /// second one, and says so.
    func testAServerAdmittingOneClientRefusesASecondMount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let server = try NBDTestServer(.memory(bytes: 64 << 20), transport: .tcp, directory: harness.workDirectory + "/nbd-limit",
                                       filters: ["limit"], parameters: ["limit=1"])
        defer { server.stop() }
        let volume = try harness.makeVolume(blockSize: 4096, nbdURI: server.uri)
        try volume.mount()
        let otherName = server.uri.replacingOccurrences(of: "127.0.0.1", with: "localhost")
        let secondMountPoint = harness.workDirectory + "/second-mnt"
        try FileManager.default.createDirectory(atPath: secondMountPoint, withIntermediateDirectories: true)
        defer { if MountTable.isMounted(secondMountPoint) { harness.forceUnmount(secondMountPoint) } }
        let second = try harness.extentfs(["mount", otherName, secondMountPoint], timeout: 60)
        XCTAssertFalse(second.succeeded, "a second mount of the export as \(otherName) succeeded: \(second)")
        XCTAssertTrue(second.stderr.contains("in use elsewhere"), "the refusal does not say why: \(second)")
        try volume.unmount()
        try volume.requireClean()
    }

    /// The server is killed while files are being written and fsynced: the writer sees EIO
    /// within the timeout (no hang), umount says changes were lost; with the server started
    /// again on the same file, fsck is clean and every file whose fsync succeeded is intact.
    func testKillingTheServerMidWorkload() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let directory = harness.workDirectory + "/nbd-kill"
        let server = try NBDTestServer(.file(path: directory + "/export.img", bytes: 256 << 20), transport: .tcp, directory: directory)
        defer { server.stop() }
        let volume = try harness.makeVolume(blockSize: 4096, nbdURI: server.uri)
        let timeout = 5.0
        try volume.mount(arguments: ["--nbd-timeout", String(timeout)])

        let writer = FsyncingWriter(directory: volume.mountPoint)
        writer.start()
        // Let some files get fsynced first.
        let deadline = Date().addingTimeInterval(60)
        while writer.fsynced.count < 5 && Date() < deadline && writer.firstError == nil { usleep(20_000) }
        XCTAssertGreaterThanOrEqual(writer.fsynced.count, 5, "the workload got nowhere before the kill")
        server.kill()
        let killed = Date()
        let finished = writer.waitUntilFinished(seconds: timeout * 4 + 20)
        XCTAssertTrue(finished, "the writer still hangs \(timeout * 4 + 20) s after the server was killed (timeout \(timeout) s)")
        guard finished else {
            harness.forceUnmount(volume.mountPoint)
            return
        }
        XCTAssertEqual(writer.firstError?.code, EIO, "the writer's first error after the kill: \(String(describing: writer.firstError))")
        if let failedAt = writer.firstError?.when {
            XCTAssertLessThan(failedAt.timeIntervalSince(killed), timeout * 2 + 10, "EIO came long after the kill")
        }

        let unmounted = try harness.extentfs(["umount", volume.mountPoint], timeout: 120)
        XCTAssertFalse(unmounted.succeeded, "umount after the server was killed succeeded: \(unmounted)")
        XCTAssertTrue(unmounted.stderr.contains("lost"), "umount does not say changes were lost: \(unmounted)")
        XCTAssertFalse(volume.isMounted, "still mounted after umount")

        try server.start()
        try volume.requireClean("after the server was killed and started again")
        try volume.mount()
        for (name, bytes) in writer.fsynced {
            XCTAssertTrue(try readWholeFile(volume.path(name)) == bytes, "\(name), fsynced before the kill: contents differ")
        }
        try volume.unmount()
        try volume.requireClean("after reading the fsynced files back")
    }

    /// The server stops answering: an fsync fails with EIO within the timeout rather than hang,
    /// and umount says changes were lost.
    func testStalledServerGivesEIOWithinTheTimeout() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let server = try NBDTestServer(.memory(bytes: 64 << 20), transport: .unixSocket, directory: harness.workDirectory + "/nbd-stall")
        defer { server.stop() }
        let volume = try harness.makeVolume(blockSize: 4096, nbdURI: server.uri)
        let timeout = 3.0
        try volume.mount(arguments: ["--nbd-timeout", String(timeout)])
        try createFile(volume.path("before"), contents: [UInt8](repeating: 1, count: 4096))

        server.pause()
        defer { server.resume() }
        let writer = FsyncingWriter(directory: volume.mountPoint, files: 1)
        let started = Date()
        writer.start()
        let finished = writer.waitUntilFinished(seconds: timeout * 4 + 20)
        XCTAssertTrue(finished, "an fsync on a stalled server still hangs after \(timeout * 4 + 20) s (timeout \(timeout) s)")
        guard finished else {
            server.resume()
            harness.forceUnmount(volume.mountPoint)
            return
        }
        XCTAssertEqual(writer.firstError?.code, EIO, "fsync on a stalled server: \(String(describing: writer.firstError))")
        XCTAssertLessThan(Date().timeIntervalSince(started), timeout * 3 + 5, "EIO took much longer than the timeout")
        server.resume()
        let unmounted = try harness.extentfs(["umount", volume.mountPoint], timeout: 120)
        XCTAssertFalse(unmounted.succeeded, "umount after the stall succeeded: \(unmounted)")
        XCTAssertFalse(volume.isMounted, "still mounted after umount")
    }
}

/// Writes files of 256 KiB and fsyncs each, on a thread of its own, until an error (or `files`
/// files): what a program on the mount does, kept apart so that a hang shows as a timeout.
private final class FsyncingWriter: @unchecked Sendable {
    struct Failure { var code: Int32; var step: String; var when: Date }

    private let directory: String
    private let files: Int
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var _fsynced: [(String, [UInt8])] = []
    private var _firstError: Failure?

    init(directory: String, files: Int = 100_000) {
        self.directory = directory
        self.files = files
    }

    var fsynced: [(String, [UInt8])] { lock.withLock { _fsynced } }
    var firstError: Failure? { lock.withLock { _firstError } }

    func start() {
        let thread = Thread { [self] in
            run()
            done.signal()
        }
        thread.start()
    }

    func waitUntilFinished(seconds: Double) -> Bool {
        done.wait(timeout: .now() + seconds) == .success
    }

    private func run() {
        for index in 0..<files {
            let name = "w\(index)"
            let bytes = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
            let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { return fail("open \(name)") }
            defer { close(fd) }
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else { return fail("write \(name) (\(written))") }
            guard fsync(fd) == 0 else { return fail("fsync \(name)") }
            lock.withLock { _fsynced.append((name, bytes)) }
        }
    }

    private func fail(_ step: String) {
        let code = errno
        lock.withLock { _firstError = Failure(code: code, step: step, when: Date()) }
    }
}
