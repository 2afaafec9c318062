import CIntegrationHelpers
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The source of a clone or dedupe ioctl is a descriptor number of the caller's, which the
/// daemon must judge as the kernel judges FICLONERANGE's: by the open file behind it, open for
/// reading, and then (a second line) by the caller's right to read it now.
final class CloneSourceTests: XCTestCase {
    /// The descriptor number the child's swapping thread keeps changing.
    static let swappedDescriptor: Int32 = 200
    static let raceMilliseconds: UInt32 = 2000
    static let maxRaceRounds = 5

    /// An unprivileged caller that swaps the source descriptor number between an O_PATH
    /// descriptor of a file it may not read and a readable descriptor of its own (dup2 in a
    /// loop, in another thread) must never get the unreadable file's blocks.
    ///
    /// Seen failing before the daemon resolved the descriptor once (pidfd_getfd): it looked at
    /// /proc/<tid>/fd/<n> for the file and at /proc/<tid>/fdinfo/<n> for the open mode, and in
    /// two seconds of racing the secret turned up in the caller's file hundreds of times.
    func testCloneFromASwappedDescriptorNeverGetsAnUnreadableFile() throws {
        try race(dedupe: false)
    }

    /// The same race through dedupe must never say that the unreadable file's contents equal a
    /// guess. Seen failing as the clone race did (dozens of "same" answers).
    func testDedupeFromASwappedDescriptorNeverComparesAnUnreadableFile() throws {
        try race(dedupe: true)
    }

    /// Past the open mode, the caller's right to read the source by its mode bits now, as the
    /// kernel's permission check decides it: a readable descriptor the user did not open itself
    /// (inherited from root) does not pass for a file the user may not read; a group member gets
    /// the group's bits (also when those say no and the others' say yes), everyone else the
    /// others'.
    func testTheSourceMustBeReadableByTheCallerNow() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let blockSize = MountHarness.blockSizes.last ?? 4096
        let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
        try volume.mountForOtherUsers()
        let length = 4 * blockSize
        let destination = volume.path("destination")
        try createFile(destination, contents: TestContent.bytes(seed: 1, count: length), mode: 0o600)
        try sys("chown(\(destination))", chown(destination, TestUser.uid, TestUser.gid))

        func source(_ name: String, mode: mode_t) throws -> String {
            let path = volume.path(name)
            try createFile(path, contents: TestContent.bytes(seed: UInt64(mode), count: length), mode: mode)
            try sys("chown(\(path))", chown(path, 0, TestUser.group))
            return path
        }
        let ownerOnly = try source("owner-only", mode: 0o600)
        let groupReads = try source("group-reads", mode: 0o640)
        let othersRead = try source("others-read", mode: 0o604)

        // Root's descriptor of a file only root may read, inherited by the user's process.
        let inherited = try openFile(ownerOnly, O_RDONLY)
        for operation in [EXTENTFS_TEST_CLONE, EXTENTFS_TEST_DEDUPE] {
            let result = try ioctlAsUser(TestUser.plain, operation, path: destination, sourceDescriptor: inherited,
                                         length: UInt64(length))
            XCTAssertEqual(result.operation_result, -EACCES,
                           "\(operation.name) from an inherited descriptor of a 0600 root file: \(errnoName(-result.operation_result))")
        }
        // Opened by the user, by the mode bits of its class.
        let cases: [(user: extentfs_test_user, who: String, path: String, expected: Int32)] = [
            (TestUser.inGroup, "a group member", groupReads, 0),
            (TestUser.plain, "a non-member", othersRead, 0),
        ]
        for (user, who, path, expected) in cases {
            let result = try ioctlAsUser(user, EXTENTFS_TEST_CLONE, path: destination, source: path, length: UInt64(length))
            XCTAssertEqual(result.operation_result, expected, "clone by \(who) from \(path): \(errnoName(-result.operation_result))")
        }
        // 0604 shuts the group out: a member cannot open it, and a descriptor the member did not
        // open does not let it through either.
        let othersReadDescriptor = try openFile(othersRead, O_RDONLY)
        let member = try ioctlAsUser(TestUser.inGroup, EXTENTFS_TEST_CLONE, path: destination,
                                     sourceDescriptor: othersReadDescriptor, length: UInt64(length))
        XCTAssertEqual(member.operation_result, -EACCES, "clone by a group member from a 0604 file: \(errnoName(-member.operation_result))")
        try closeFile(othersReadDescriptor)
        try closeFile(inherited)
        try volume.unmount()
        try volume.requireClean()
    }

    private func race(dedupe: Bool) throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let operation = dedupe ? "dedupe" : "clone"
        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize), \(operation)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mountForOtherUsers()
            let files = try makeFiles(volume, dedupe: dedupe)

            // Rounds until both sides of the race were hit: on a loaded machine one round of
            // 2 s can see only one side (seen: no clone of the user's file went through). Every
            // round's leaks and errors count.
            var outcome = extentfs_race_outcome()
            for _ in 0..<Self.maxRaceRounds where outcome.accepted == 0 || outcome.refused == 0 {
                var round = extentfs_race_outcome()
                let started = files.secretContents.withUnsafeBufferPointer { prefix in
                    files.secret.withCString { secretPath in
                        files.ownSource.withCString { ownPath in
                            files.destination.withCString { destinationPath in
                                var setup = extentfs_race_setup(
                                    user: TestUser.plain, secret_path: secretPath, secret_prefix: prefix.baseAddress,
                                    secret_prefix_length: UInt32(min(prefix.count, 256)), own_source_path: ownPath,
                                    destination_path: destinationPath, dedupe: dedupe ? 1 : 0,
                                    length: UInt64(files.secretContents.count), milliseconds: Self.raceMilliseconds,
                                    max_attempts: 20000, swapped_descriptor: Self.swappedDescriptor)
                                return extentfs_test_race_source_descriptor(&setup, &round)
                            }
                        }
                    }
                }
                XCTAssertEqual(started, 0, "\(context): the unprivileged child did not report: \(errnoName(-started))")
                outcome.failed_step = outcome.failed_step != 0 ? outcome.failed_step : round.failed_step
                outcome.setup_error = outcome.setup_error != 0 ? outcome.setup_error : round.setup_error
                outcome.secret_open_error = round.secret_open_error
                outcome.path_descriptor_result = round.path_descriptor_result
                outcome.unexpected_error = outcome.unexpected_error != 0 ? outcome.unexpected_error : round.unexpected_error
                outcome.attempts += round.attempts
                outcome.accepted += round.accepted
                outcome.refused += round.refused
                outcome.leaks += round.leaks
                outcome.swaps += round.swaps
                if started != 0 || round.failed_step != 0 { break }
            }
            XCTAssertEqual(outcome.failed_step, 0, "\(context): setup step \(outcome.failed_step) failed: \(errnoName(outcome.setup_error))")
            // The premise: the user may not read the secret, and may name it by O_PATH.
            XCTAssertEqual(outcome.secret_open_error, EACCES, "\(context): the user opened the secret for reading")
            XCTAssertEqual(outcome.path_descriptor_result, -EBADF,
                           "\(context): an O_PATH descriptor as the source, without any race")
            XCTAssertEqual(outcome.leaks, 0, "\(context): \(outcome.leaks) of \(outcome.attempts) \(operation)s reached the secret "
                           + "(\(outcome.accepted) accepted, \(outcome.refused) refused, \(outcome.swaps) swaps)")
            XCTAssertEqual(outcome.unexpected_error, 0, "\(context): an ioctl failed with \(errnoName(outcome.unexpected_error))")
            // Both sides of the race were hit: some calls saw the O_PATH descriptor and were refused,
            // some saw the user's own file and went through.
            XCTAssertGreaterThan(outcome.accepted, 0, "\(context): no \(operation) of the user's own file went through")
            XCTAssertGreaterThan(outcome.refused, 0, "\(context): no \(operation) saw the O_PATH descriptor")

            let destination = try readWholeFile(files.destination)
            if dedupe {
                XCTAssertTrue(destination == files.secretContents, "\(context): dedupe changed what the destination reads as")
            } else {
                XCTAssertTrue(destination == files.ownContents, "\(context): the destination is not a clone of the user's file")
            }
            try volume.unmount()
            try volume.requireClean(context)
        }
    }

    private struct RaceFiles {
        var secret: String
        var secretContents: [UInt8]
        var ownSource: String
        var ownContents: [UInt8]
        var destination: String
    }

    /// As root: a secret 0600 file in a directory others may search but not list; the user's own
    /// readable file and destination in a directory of the user's. For dedupe the destination
    /// holds the secret's bytes (a right guess), so only the secret itself compares equal.
    private func makeFiles(_ volume: TestVolume, dedupe: Bool) throws -> RaceFiles {
        let length = 16 * volume.blockSize
        let hidden = volume.path("hidden")
        try makeDirectory(hidden, mode: 0o711)
        let home = volume.path("home")
        try makeDirectory(home, mode: 0o755)
        try sys("chown(\(home))", chown(home, TestUser.uid, TestUser.gid))

        let files = RaceFiles(secret: hidden + "/secret", secretContents: TestContent.bytes(seed: 0x5EC2E7, count: length),
                              ownSource: home + "/own", ownContents: TestContent.bytes(seed: 0x0317, count: length),
                              destination: home + "/destination")
        try createFile(files.secret, contents: files.secretContents, mode: 0o600)
        try createFile(files.ownSource, contents: files.ownContents, mode: 0o644)
        try createFile(files.destination, contents: dedupe ? files.secretContents : TestContent.bytes(seed: 0xD0, count: length),
                       mode: 0o600)
        for path in [files.ownSource, files.destination] {
            try sys("chown(\(path))", chown(path, TestUser.uid, TestUser.gid))
        }
        return files
    }
}
