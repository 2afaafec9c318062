import XCTest
import SystemPackage
import NBDTestServer
@testable import ExtentFS

/// The NBD backing store against real nbdkit servers (memory and file plugins, over a Unix
/// socket and over TCP on 127.0.0.1): volumes made, written, fsynced, remounted, read back and
/// checked over NBD; pieces and vectors; real flushes; errors, a stalled server and a killed one
/// give EIO within the timeout and shut the volume down, and nothing fsynced before is lost.
final class NBDStoreTests: XCTestCase {
    // MARK: - Round trips

    func testVolumeOnMemoryExportOverUnixSocket() throws {
        try roundTrip(.memory(bytes: 64 << 20), transport: .unixSocket, blockSize: 4096)
    }

    func testVolumeOnFileExportOverTCP() throws {
        try roundTrip(nil, transport: .tcp, blockSize: 1024)
    }

    func testVolumeOnFileExportOverUnixSocketAt64KiBBlocks() throws {
        try roundTrip(nil, transport: .unixSocket, blockSize: 65536)
    }

    /// A server whose smallest unit is 4 KiB (as qemu-nbd over a 4 KiB-sector disk; here nbdkit's
    /// blocksize-policy filter, which refuses anything finer): a volume of 4 KiB blocks, whose
    /// superblock sectors and log header go through whole units; mkfs refuses smaller blocks (as
    /// mkfs.xfs refuses blocks smaller than a sector); a volume of 1 KiB blocks made elsewhere
    /// still mounts on it, every block then read, changed and written as a whole unit.
    func testVolumeOnAServerWhoseSmallestUnitIsLargerThanABlock() throws {
        try roundTrip(nil, transport: .unixSocket, blockSize: 4096,
                      filters: ["blocksize-policy"], parameters: Self.fourKiBUnits)

        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let image = directory + "/image.img"
        var format = FormatOptions()
        format.blockSize = 1024
        let plain = try NBDTestServer(.file(path: image, bytes: 64 << 20), transport: .unixSocket, directory: directory)
        try Volume.format(image: plain.uri, options: format)
        plain.stop()
        let server = try NBDTestServer(.file(path: image, bytes: 64 << 20), transport: .unixSocket, directory: directory,
                                       filters: ["blocksize-policy"], parameters: Self.fourKiBUnits)
        defer { server.stop() }
        format.force = true
        XCTAssertThrowsError(try Volume.format(image: server.uri, options: format)) {
            XCTAssertTrue("\($0)".contains("smallest unit"), "\($0)")
        }

        let big = pattern(3 << 20 + 777, seed: 40), small = pattern(1500, seed: 41)
        var fs = try FileSystem.mount(image: server.uri)
        let bigFile = try fs.create(parent: FileSystem.rootInode, name: Array("big".utf8), mode: 0o644, flags: 0, owner: .root).ino
        let smallFile = try fs.create(parent: FileSystem.rootInode, name: Array("small".utf8), mode: 0o644, flags: 0, owner: .root).ino
        _ = try big.withUnsafeBytes { try fs.write(bigFile, offset: 0, $0) }
        _ = try small.withUnsafeBytes { try fs.write(smallFile, offset: 1001, $0) }
        try fs.fsync(bigFile, dataOnly: false)
        try fs.fsync(smallFile, dataOnly: false)
        try fs.unmount()
        fs = try FileSystem.mount(image: server.uri)
        var readBig: [UInt8] = [], readSmall: [UInt8] = []
        try fs.read(try fs.lookup(parent: FileSystem.rootInode, name: Array("big".utf8)).ino, offset: 0, count: big.count) { readBig = Array($0) }
        try fs.read(try fs.lookup(parent: FileSystem.rootInode, name: Array("small".utf8)).ino, offset: 0, count: 4096) { readSmall = Array($0) }
        try fs.unmount()
        XCTAssertNil(ExpectedBytes(big).mismatch(readBig), "big file of 1 KiB blocks on 4 KiB units")
        XCTAssertNil(ExpectedBytes([UInt8](repeating: 0, count: 1001) + small).mismatch(readSmall), "small file at an odd offset")
        XCTAssertEqual(try Volume.check(image: server.uri), [])
    }

    static let fourKiBUnits = ["blocksize-minimum=4096", "blocksize-preferred=4096", "blocksize-error-policy=error"]

    /// mkfs, write (several MiB: many commands in flight at once), fsync, remount, read back,
    /// fsck, all over NBD; then for the file plugin, the file it served is the same volume.
    private func roundTrip(_ plugin: NBDTestServer.Plugin?, transport: NBDTestServer.Transport, blockSize: Int,
                           filters: [String] = [], parameters: [String] = [],
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let volume = try NBDVolume(plugin, transport: transport, blockSize: blockSize, filters: filters, parameters: parameters)
        let big = pattern(5 << 20 + 12345, seed: 1)
        let small = pattern(3000, seed: 2)
        let bigFile = try volume.create("big")
        let smallFile = try volume.create("small")
        try volume.write(bigFile, big, at: 0)
        try volume.write(smallFile, small, at: 777)
        try volume.fs.fsync(bigFile, dataOnly: false)
        try volume.fs.fsync(smallFile, dataOnly: false)
        try volume.remount()
        XCTAssertTrue(try volume.read(try volume.lookup("big"), big.count + 10, at: 0) == big, "big file after remount", file: file, line: line)
        XCTAssertTrue(try volume.read(try volume.lookup("small"), 5000, at: 0) == [UInt8](repeating: 0, count: 777) + small,
                      "small file after remount", file: file, line: line)
        try volume.unmountAndCheck(file: file, line: line)
        if plugin == nil {
            volume.server.stop()
            XCTAssertEqual(try Volume.check(image: volume.imageFile), [], "the served file as a local image", file: file, line: line)
            let local = try FileSystem.mount(image: volume.imageFile)
            var read: [UInt8] = []
            let ino = try local.lookup(parent: FileSystem.rootInode, name: Array("big".utf8)).ino
            try local.read(ino, offset: 0, count: big.count) { read = Array($0) }
            try local.unmount()
            XCTAssertTrue(read == big, "big file read from the served file directly", file: file, line: line)
        }
    }

    /// TLS as libnbd supports it: nbds+unix:// with a pre-shared key named in the URI.
    func testVolumeOverTLSWithAPreSharedKey() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let keys = directory + "/keys.psk"
        let key = pattern(32, seed: 50).map { String(format: "%02x", $0) }.joined()
        XCTAssertTrue(FileManager.default.createFile(atPath: keys, contents: Data("alice:\(key)\n".utf8),
                                                     attributes: [.posixPermissions: 0o600]))
        let server = try NBDTestServer(.memory(bytes: 32 << 20), transport: .unixSocket, directory: directory,
                                       serverOptions: ["--tls=require", "--tls-psk=\(keys)"])
        defer { server.stop() }
        let uri = "nbds+unix://alice@/?socket=\(server.socketPath)&tls-psk-file=\(keys)"
        try Volume.format(image: uri, options: FormatOptions())
        let fs = try FileSystem.mount(image: uri)
        let ino = try fs.create(parent: FileSystem.rootInode, name: Array("secret".utf8), mode: 0o644, flags: 0, owner: .root).ino
        let bytes = pattern(70_000, seed: 51)
        _ = try bytes.withUnsafeBytes { try fs.write(ino, offset: 0, $0) }
        try fs.fsync(ino, dataOnly: false)
        try fs.unmount()
        XCTAssertEqual(try Volume.check(image: uri), [])
        // Without TLS the server does not talk to us.
        XCTAssertThrowsError(try Volume.check(image: server.uri))
    }

    // MARK: - The store itself

    /// Reads and writes that span many commands, vectors of scattered memory (staged) and of
    /// one stretch (sent as they are), and zeros past the end of the export.
    func testPiecesAndVectorsRoundTrip() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let server = try NBDTestServer(.memory(bytes: 8 << 20), transport: .unixSocket, directory: directory)
        let store = try BackingStore(path: server.uri, writable: true)
        XCTAssertEqual(store.size, 8 << 20)
        XCTAssertFalse(store.isResizable)

        let whole = pattern(3 << 20 + 4096 * 3 + 512, seed: 7)
        try store.write(whole, at: 4096)
        XCTAssertTrue(try store.read(whole.count, at: 4096) == whole, "contiguous write and read")

        // 300 pages of 4 KiB, every other one from a different buffer: no two adjacent in memory.
        let pageCount = 300
        let even = UnsafeMutableRawPointer.allocate(byteCount: pageCount * 4096, alignment: 4096)
        let odd = UnsafeMutableRawPointer.allocate(byteCount: pageCount * 4096, alignment: 4096)
        defer { even.deallocate(); odd.deallocate() }
        let expected = pattern(pageCount * 4096, seed: 8)
        var vectors: [iovec] = []
        for page in 0..<pageCount {
            let memory = (page % 2 == 0 ? even : odd) + page * 4096
            expected.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress! + page * 4096, byteCount: 4096) }
            vectors.append(iovec(iov_base: memory, iov_len: 4096))
        }
        try store.write(vectors: vectors, at: 1 << 20)
        XCTAssertTrue(try store.read(expected.count, at: 1 << 20) == expected, "gathered write")
        for page in 0..<pageCount { ((page % 2 == 0 ? even : odd) + page * 4096).initializeMemory(as: UInt8.self, repeating: 0, count: 4096) }
        try store.read(vectors: vectors, at: 1 << 20)
        var scattered: [UInt8] = []
        for vector in vectors { scattered += UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len) }
        XCTAssertTrue(scattered == expected, "scattered read")

        let tail = try store.read(8192, at: (8 << 20) - 4096)
        XCTAssertEqual(tail[4096...].allSatisfy { $0 == 0 }, true, "past the end reads as zeros")
        try store.flush()
    }

    /// Reads and writes finer than the server's smallest unit (4 KiB, anything finer refused by
    /// the server): at any offset and length, and from eight threads at once into neighbouring
    /// bytes of the same units, none undoing another's (each partial unit is read, changed and
    /// written whole, one at a time).
    func testReadsAndWritesFinerThanTheServersUnit() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let server = try NBDTestServer(.memory(bytes: 4 << 20), transport: .unixSocket, directory: directory,
                                       filters: ["blocksize-policy"], parameters: Self.fourKiBUnits)
        let store = try BackingStore(path: server.uri, writable: true)
        var model = [UInt8](repeating: 0, count: 256 << 10)
        func write(_ bytes: [UInt8], at offset: Int) throws {
            try store.write(bytes, at: UInt64(offset))
            model.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        }
        try write(pattern(3 * 4096 + 1000, seed: 30), at: 4096 + 700)
        try write(pattern(10, seed: 31), at: 3)
        try write(pattern(4096, seed: 32), at: 8192 + 1)
        try write(pattern(8192, seed: 33), at: 40960)
        for (offset, count) in [(4096 + 700, 3 * 4096 + 1000), (0, 20), (8190, 4100), (4095, 1), (40960, 8192), (0, 64 << 10)] {
            XCTAssertNil(ExpectedBytes(Array(model[offset..<offset + count])).mismatch(try store.read(count, at: UInt64(offset))),
                         "read of \(count) bytes at \(offset)")
        }

        let threads = 8, units = 16, slot = 64, rounds = 24
        let failures = NSLock()
        var failure: Error?
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<rounds {
                for unit in 0..<units {
                    let offset = (64 << 10) + unit * 4096 + (round % 8) * (threads * slot) + thread * slot
                    do { try store.write(pattern(slot, seed: UInt64(thread * 1000 + round)), at: UInt64(offset)) } catch {
                        failures.withLock { failure = failure ?? error }
                    }
                }
            }
        }
        XCTAssertNil(failure.map { "\($0)" })
        for thread in 0..<threads {
            for round in rounds - 8..<rounds {
                for unit in 0..<units {
                    let offset = (64 << 10) + unit * 4096 + (round % 8) * (threads * slot) + thread * slot
                    model.replaceSubrange(offset..<offset + slot, with: pattern(slot, seed: UInt64(thread * 1000 + round)))
                }
            }
        }
        try store.flush()
        XCTAssertNil(ExpectedBytes(model).mismatch(try store.read(model.count, at: 0)), "after eight threads wrote into the same units")
    }

    /// Sequential reads are read ahead; a write into what was read ahead must be what a later
    /// read returns, and what was read ahead must equal what is on the server.
    func testReadaheadSeesEveryWrite() throws {
        try readaheadRounds(filters: [], parameters: [])
        // Writes held 10 ms by the server: readahead must not ask for a range being written.
        try readaheadRounds(filters: ["delay"], parameters: ["delay-write=10ms"])
    }

    private func readaheadRounds(filters: [String], parameters: [String]) throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let server = try NBDTestServer(.memory(bytes: 16 << 20), transport: .unixSocket, directory: directory,
                                       filters: filters, parameters: parameters)
        defer { server.stop() }
        let store = try BackingStore(path: server.uri, writable: true)
        let original = pattern(16 << 20, seed: 30)
        try store.write(original, at: 0)
        let piece = 256 << 10
        var expected = original
        for round in 0..<3 {
            // A stream of reads, so that the store reads chunks ahead of it.
            for index in 0..<8 {
                let offset = index * piece
                XCTAssertTrue(try store.read(piece, at: UInt64(offset)) == Array(expected[offset..<offset + piece]),
                              "\(filters): round \(round), sequential read \(index)")
            }
            // Overwrite a part of what is read ahead by now, then read on through it.
            let changed = pattern(100_000, seed: UInt64(40 + round))
            // Ahead of the next read, inside what readahead asks for next.
            let at = 12 * piece + 50_000 + round * 4096
            try store.write(changed, at: UInt64(at))
            expected.replaceSubrange(at..<at + changed.count, with: changed)
            for index in 8..<16 {
                let offset = index * piece
                XCTAssertTrue(try store.read(piece, at: UInt64(offset)) == Array(expected[offset..<offset + piece]),
                              "\(filters): round \(round), sequential read \(index) after a write into the readahead: stale readahead")
            }
        }
        XCTAssertTrue(try store.read(expected.count, at: 0) == expected, "the whole export")
    }

    /// Writes return before the server answers; a read right after a write, and a write over
    /// a write still in flight, must still come out in order: nbdkit's delay filter holds every
    /// write 20 ms while reads go through at once (a server may carry out commands in flight in
    /// any order).
    func testWritesInFlightStayInOrder() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let server = try NBDTestServer(.memory(bytes: 8 << 20), transport: .unixSocket, directory: directory,
                                       filters: ["delay"], parameters: ["delay-write=20ms"])
        defer { server.stop() }
        let store = try BackingStore(path: server.uri, writable: true)
        var model = [UInt8](repeating: 0, count: 64 << 10)
        for round in 0..<40 {
            let offset = (round % 7) * 4096
            let bytes = pattern(12_288 + round * 512, seed: UInt64(60 + round))
            try store.write(bytes, at: UInt64(offset))
            model.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            if round % 3 == 0 {
                XCTAssertTrue(try store.read(model.count, at: 0) == model, "round \(round): a read after writes in flight")
            }
        }
        try store.flush()
        XCTAssertTrue(try store.read(model.count, at: 0) == model, "after the flush")
    }

    /// A write the server fails after the call returned fails the next write and every flush.
    func testAFailedWriteFailsLaterWritesAndFlushes() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let trigger = directory + "/fail-writes"
        let server = try NBDTestServer(.memory(bytes: 8 << 20), transport: .unixSocket, directory: directory,
                                       filters: ["error"], parameters: ["error-pwrite=EIO", "error-pwrite-rate=100%", "error-pwrite-file=\(trigger)"])
        defer { server.stop() }
        let store = try BackingStore(path: server.uri, writable: true)
        try store.write(pattern(8192, seed: 70), at: 0)
        try store.flush()
        XCTAssertTrue(FileManager.default.createFile(atPath: trigger, contents: nil), "cannot create \(trigger)")
        do { try store.write(pattern(8192, seed: 71), at: 65536) } catch {}
        XCTAssertThrowsError(try store.flush(), "a flush after a failed write succeeded")
        unlink(trigger)
        XCTAssertThrowsError(try store.write(pattern(4096, seed: 72), at: 0), "a write after a failed write succeeded")
        XCTAssertThrowsError(try store.flush(), "a second flush after a failed write succeeded")
    }

    /// fsync reaches the server as NBD_CMD_FLUSH (nbdkit's log filter records every request),
    /// and the recording layer above the store (the crash harness's) sees the NBD store's
    /// writes and flushes as it sees a file's.
    func testFsyncSendsFlushAndTheRecordingLayerSeesIt() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let log = directory + "/requests.log"
        let volume = try NBDVolume(.memory(bytes: 64 << 20), transport: .unixSocket, filters: ["log"], parameters: ["logfile=\(log)"])
        let counter = StoreCounter()
        try volume.fs.unmount()
        volume.options.storeInterceptor = counter
        volume.fs = try FileSystem.mount(image: volume.uri, options: volume.options)
        let flushesBefore = try requests(named: "Flush", in: log)
        let ino = try volume.create("f")
        try volume.write(ino, pattern(100_000, seed: 3), at: 0)
        try volume.fs.fsync(ino, dataOnly: false)
        XCTAssertGreaterThan(counter.flushes, 0, "the recording layer saw no flush")
        XCTAssertGreaterThan(counter.bytes, 100_000, "the recording layer saw too few bytes written")
        XCTAssertGreaterThan(try requests(named: "Flush", in: log), flushesBefore, "fsync sent no NBD flush to the server")
        try volume.unmountAndCheck()
    }

    private func requests(named name: String, in log: String) throws -> Int {
        let text = try String(contentsOfFile: log, encoding: .utf8)
        return text.split(separator: "\n").filter { $0.contains(" \(name) ") && $0.contains("...") }.count
    }

    /// A server that cannot flush could lose what a commit promised: refused for writing.
    func testServerWithoutFlushIsRefusedForWriting() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        // The eval plugin with no flush script: the server says it cannot flush.
        let server = try NBDTestServer(.custom(["eval", "get_size=echo 67108864",
                                                "pread=dd if=/dev/zero count=$3 iflag=count_bytes status=none",
                                                "pwrite=cat >/dev/null"]),
                                       transport: .unixSocket, directory: directory)
        XCTAssertThrowsError(try Volume.format(image: server.uri, options: FormatOptions())) { error in
            XCTAssertTrue("\(error)".contains("cannot flush"), "unclear refusal: \(error)")
        }
        XCTAssertThrowsError(try FileSystem.mount(image: server.uri)) { error in
            XCTAssertTrue("\(error)".contains("cannot flush"), "unclear refusal: \(error)")
        }
    }

    /// One mount of a URI at a time on this host; fsck of a mounted URI is refused too.
    func testSecondMountOfTheSameExportIsRefused() throws {
        let volume = try NBDVolume(.memory(bytes: 32 << 20), transport: .tcp)
        XCTAssertThrowsError(try FileSystem.mount(image: volume.uri, options: volume.options)) { error in
            XCTAssertEqual((error as? ExtentFSError)?.errno, .resourceBusy, "\(error)")
        }
        XCTAssertThrowsError(try Volume.check(image: volume.uri)) { error in
            XCTAssertEqual((error as? ExtentFSError)?.errno, .resourceBusy, "\(error)")
        }
        try volume.unmountAndCheck()
    }

    // MARK: - Faults

    /// The server answers EIO to writes (nbdkit's error filter, switched on by a file): the
    /// fsync that needed them fails, the volume shuts down (EIO from then on, unmount says
    /// changes were lost), and after a remount what was fsynced before is there.
    func testServerErrorsGiveEIOAndShutDownTheVolume() throws {
        let directory = try temporaryDirectory()
        defer { removeDirectory(directory) }
        let trigger = directory + "/fail-writes"
        let volume = try NBDVolume(transport: .unixSocket, filters: ["error"],
                                   parameters: ["error-pwrite=EIO", "error-pwrite-rate=100%", "error-pwrite-file=\(trigger)"])
        let kept = pattern(200_000, seed: 4)
        let keptFile = try volume.create("kept")
        try volume.write(keptFile, kept, at: 0)
        try volume.fs.fsync(keptFile, dataOnly: false)

        XCTAssertTrue(FileManager.default.createFile(atPath: trigger, contents: nil), "cannot create \(trigger)")
        let lost = try volume.create("lost")
        try volume.write(lost, pattern(100_000, seed: 5), at: 0)
        // The fsync that needed the failed writes fails; the next commit shuts the volume down
        // (this one did already if the error came back at its flush: on NBD a failed write
        // fails the next write and every flush).
        XCTAssertEqual(storeErrno(of: { try volume.fs.fsync(lost, dataOnly: false) }), .ioError,
                       "fsync while the server fails every write")
        _ = try? volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("dir".utf8), mode: 0o755, owner: .root)
        XCTAssertEqual(storeErrno(of: { try volume.fs.fsyncdir(FileSystem.rootInode) }), .ioError,
                       "fsyncdir while the server fails every write")
        XCTAssertEqual(errno(of: { _ = try volume.create("after") }), .ioError, "the volume is not shut down")
        XCTAssertThrowsError(try volume.fs.unmount(), "unmount did not report lost changes")
        volume.fs = nil

        unlink(trigger)
        volume.fs = try FileSystem.mount(image: volume.uri, options: volume.options)
        XCTAssertTrue(try volume.read(try volume.lookup("kept"), kept.count, at: 0) == kept, "fsynced file after the errors")
        try volume.unmountAndCheck()
    }

    /// The server stops answering (SIGSTOP): the fsync fails with EIO within the timeout, never
    /// hangs; later requests fail at once; nothing is retried when the server wakes up.
    func testStalledServerFailsWithinTheTimeout() throws {
        let timeout = 2.0
        let volume = try NBDVolume(.memory(bytes: 64 << 20), transport: .unixSocket, timeout: timeout)
        let ino = try volume.create("f")
        try volume.write(ino, pattern(1 << 20, seed: 6), at: 0)
        volume.server.pause()
        defer { volume.server.resume() }
        let started = NBDCompletion.monotonicSeconds()
        XCTAssertThrowsError(try volume.fs.fsync(ino, dataOnly: false), "fsync succeeded on a stalled server")
        let elapsed = NBDCompletion.monotonicSeconds() - started
        XCTAssertLessThan(elapsed, timeout * 3 + 2, "fsync on a stalled server took \(elapsed) s with a \(timeout) s timeout")
        let again = NBDCompletion.monotonicSeconds()
        XCTAssertThrowsError(try volume.fs.sync())
        XCTAssertLessThan(NBDCompletion.monotonicSeconds() - again, 1, "a request after the timeout waited again")
        volume.server.resume()
        XCTAssertThrowsError(try volume.fs.unmount(), "unmount after the timeout did not report lost changes")
        volume.fs = nil
    }

    /// The server is killed mid-workload: requests fail with EIO at once; started again on the
    /// same file, the image is clean and every fsynced file is there.
    func testKilledServerGivesEIOAndTheImageSurvives() throws {
        let volume = try NBDVolume(transport: .tcp)
        var fsynced: [(String, [UInt8])] = []
        for index in 0..<5 {
            let name = "kept\(index)"
            let bytes = pattern(300_000 + index * 4096, seed: UInt64(10 + index))
            let ino = try volume.create(name)
            try volume.write(ino, bytes, at: 0)
            try volume.fs.fsync(ino, dataOnly: false)
            fsynced.append((name, bytes))
        }
        let unsynced = try volume.create("unsynced")
        try volume.write(unsynced, pattern(2 << 20, seed: 20), at: 0)
        volume.server.kill()
        let started = NBDCompletion.monotonicSeconds()
        XCTAssertEqual(storeErrno(of: { try volume.fs.fsync(unsynced, dataOnly: false) }), .ioError, "fsync with the server gone")
        XCTAssertLessThan(NBDCompletion.monotonicSeconds() - started, 5, "a dead server was not noticed at once")
        _ = try? volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("dir".utf8), mode: 0o755, owner: .root)
        XCTAssertEqual(storeErrno(of: { try volume.fs.fsyncdir(FileSystem.rootInode) }), .ioError, "fsyncdir with the server gone")
        XCTAssertEqual(errno(of: { _ = try volume.create("after") }), .ioError, "the volume is not shut down")
        XCTAssertThrowsError(try volume.fs.unmount())
        volume.fs = nil

        try volume.server.start()
        XCTAssertEqual(try Volume.check(image: volume.uri), [], "fsck after the server was killed and started again")
        volume.fs = try FileSystem.mount(image: volume.uri, options: volume.options)
        for (name, bytes) in fsynced {
            XCTAssertTrue(try volume.read(try volume.lookup(name), bytes.count, at: 0) == bytes, "\(name), fsynced before the kill")
        }
        try volume.unmountAndCheck()
    }

    /// A server that accepts the connection but never speaks: connecting gives up after the
    /// timeout.
    func testConnectingToASilentServerTimesOut() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(listener, generic, length) == 0 && getsockname(listener, generic, &length) == 0 && listen(listener, 4) == 0
            }
        }
        XCTAssertTrue(listening)
        var options = StoreOptions()
        options.nbdTimeout = 1
        let started = NBDCompletion.monotonicSeconds()
        XCTAssertThrowsError(try BackingStore(path: "nbd://127.0.0.1:\(UInt16(bigEndian: address.sin_port))/", writable: false, options: options)) { error in
            XCTAssertTrue("\(error)".contains("no answer within"), "\(error)")
        }
        XCTAssertLessThan(NBDCompletion.monotonicSeconds() - started, 5)
    }

    func testNBDLocationsAreRecognized() {
        for uri in ["nbd://host/export", "nbd://host:10809/", "nbds://host/x", "nbd+unix:///?socket=/tmp/s",
                    "nbds+unix:///e?socket=/s", "nbd+vsock://2:10809/", "NBD://host/"] {
            XCTAssertTrue(StoreLocation.isNBD(uri), uri)
        }
        for path in ["/var/tmp/image.img", "image.img", "nbd.img", "nbd:/x", "./nbd://x", "http://host/"] {
            XCTAssertFalse(StoreLocation.isNBD(path), path)
        }
    }

    // MARK: - Helpers

    /// The errno a call failed with, whether it threw a bare Errno or an ExtentFSError.
    private func storeErrno(of body: () throws -> Void) -> Errno? {
        do {
            try body()
            return nil
        } catch let error as ExtentFSError {
            return error.errno
        } catch let error as Errno {
            return error
        } catch {
            return nil
        }
    }

    private func temporaryDirectory() throws -> String {
        var template = Array("/tmp/extentfs-nbd-test-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    private func removeDirectory(_ directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
