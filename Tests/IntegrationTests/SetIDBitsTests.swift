import CExerciseSyscalls
import CIntegrationHelpers
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// On a mount with suid, a user in the group of a root-owned set-user-ID program that the group
/// may write must not be able to replace its contents through the extentfs ioctls and keep its
/// privileges: clone into it, insert and collapse (and unshare, as every fallocate mode) take
/// the set-user-ID bit, the set-group-ID bit (the group may execute) and security.capability, as
/// the kernel's own write would. Seen failing before the engine took them: the file stayed 06775
/// with its capabilities after each of the four.
final class SetIDBitsTests: XCTestCase {
    /// A version 2 security.capability value (struct vfs_cap_data, little endian): effective,
    /// permitting CAP_NET_RAW, what `setcap cap_net_raw+ep` writes.
    static let capability: [UInt8] = [0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00] + [UInt8](repeating: 0, count: 12)
    static let capabilityName = "security.capability"
    static let programMode: mode_t = 0o6775

    func testChangingAProgramThroughTheIoctlsTakesItsPrivileges() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mountForOtherUsers(arguments: ["-o", "suid"])
            let b = UInt64(blockSize)
            let length = 8 * blockSize
            let own = volume.path("own")
            try createFile(own, contents: TestContent.bytes(seed: 1, count: length), mode: 0o644)
            try sys("chown(\(own))", chown(own, TestUser.uid, TestUser.gid))

            let changes: [(operation: extentfs_test_operation, offset: UInt64, length: UInt64)] = [
                (EXTENTFS_TEST_CLONE, 0, 2 * b),
                (EXTENTFS_TEST_INSERT, b, b),
                (EXTENTFS_TEST_COLLAPSE, b, b),
                (EXTENTFS_TEST_UNSHARE, 0, b),
            ]
            for (operation, offset, count) in changes {
                let context = "bs \(blockSize), \(operation.name) by a group member"
                let program = try makeProgram(volume, "program-\(operation.name)", length: length, context)
                let result = try ioctlAsUser(TestUser.inGroup, operation, path: program, source: own, offset: offset, length: count)
                XCTAssertEqual(result.operation_result, 0, "\(context): \(errnoName(-result.operation_result))")
                try expectPrivileges(program, mode: 0o775, capability: false, context)
            }

            // Root keeps the set-ID bits (CAP_FSETID) but not the capabilities, as with a write.
            let rootsProgram = try makeProgram(volume, "program-root", length: length, "bs \(blockSize), root")
            let root = extentfs_test_user(uid: 0, gid: 0, group: 0, has_group: 0)
            let byRoot = try ioctlAsUser(root, EXTENTFS_TEST_CLONE, path: rootsProgram, source: own, length: 2 * b)
            XCTAssertEqual(byRoot.operation_result, 0, "bs \(blockSize), clone by root: \(errnoName(-byRoot.operation_result))")
            try expectPrivileges(rootsProgram, mode: Self.programMode, capability: false, "bs \(blockSize), clone by root")

            // Dedupe changes nothing the file reads as: it keeps everything, its times too.
            let context = "bs \(blockSize), dedupe by a group member"
            let deduped = try makeProgram(volume, "program-dedupe", length: length, context)
            let twin = volume.path("twin")
            try createFile(twin, contents: try readWholeFile(deduped), mode: 0o644)
            try sys("chown(\(twin))", chown(twin, TestUser.uid, TestUser.gid))
            let before = try fileStatus(deduped)
            let dedupe = try ioctlAsUser(TestUser.inGroup, EXTENTFS_TEST_DEDUPE, path: deduped, source: twin, length: UInt64(length))
            XCTAssertEqual(dedupe.operation_result, 0, "\(context): \(errnoName(-dedupe.operation_result))")
            XCTAssertEqual(dedupe.dedupe_status, EXTENTFS_DEDUPE_SAME, "\(context): status")
            try expectPrivileges(deduped, mode: Self.programMode, capability: true, context)
            let after = try fileStatus(deduped)
            XCTAssertEqual(after.st_mtim.nanoseconds, before.st_mtim.nanoseconds, "\(context): mtime")
            XCTAssertEqual(after.st_ctim.nanoseconds, before.st_ctim.nanoseconds, "\(context): ctime")

            try volume.remountChecked("bs \(blockSize)")
            try expectPrivileges(volume.path("program-clone"), mode: 0o775, capability: false, "bs \(blockSize), after a remount")
            try volume.unmount()
        }
    }

    /// The daemon negotiates FUSE_HANDLE_KILLPRIV_V2, so the kernel stops asking for
    /// security.capability before every write and leaves the set-ID bits to us once it has
    /// marked the inode S_NOSEC (after a write by root found nothing to take). Each case first
    /// has root write to the file so the kernel's own check is out of the way; without the
    /// daemon's part the bits stayed.
    func testWritesTruncatesAndChownsTakePrivilegesTheKernelLeavesToUs() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mountForOtherUsers(arguments: ["-o", "suid"])
        let length = 8192
        func program(_ name: String, mode: mode_t, capability: Bool = false) throws -> String {
            let path = try makeProgram(volume, name, length: length, mode: mode, capability: capability, name)
            try writeAsRoot(path)
            try expectPrivileges(path, mode: mode, capability: capability, "\(name), after root wrote (CAP_FSETID)")
            return path
        }
        let cases: [(name: String, user: extentfs_test_user, operation: extentfs_test_operation, mode: mode_t, expected: mode_t)] = [
            ("write-by-member", TestUser.inGroup, EXTENTFS_TEST_WRITE, 0o6775, 0o775),
            ("truncate-by-member", TestUser.inGroup, EXTENTFS_TEST_TRUNCATE, 0o6775, 0o775),
            // Set-group-ID without group execute: a member keeps it, anyone else takes it.
            ("write-by-member-no-group-exec", TestUser.inGroup, EXTENTFS_TEST_WRITE, 0o2766, 0o2766),
            ("write-by-other-no-group-exec", TestUser.plain, EXTENTFS_TEST_WRITE, 0o2766, 0o766),
        ]
        for (name, user, operation, mode, expected) in cases {
            let path = try program(name, mode: mode)
            let result = try ioctlAsUser(user, operation, path: path, offset: 100, length: 10)
            XCTAssertEqual(result.operation_result, 0, "\(name): \(errnoName(-result.operation_result))")
            try expectPrivileges(path, mode: expected, capability: false, name)
        }

        // Capabilities go with any write, root's too.
        let capable = try makeProgram(volume, "write-by-root-caps", length: length, mode: 0o755, capability: true, "caps")
        try writeAsRoot(capable)
        try expectPrivileges(capable, mode: 0o755, capability: false, "write by root of a file with capabilities")

        // A chown takes set-user-ID also from root; set-group-ID as the group may execute.
        let chowned = try program("chown-by-root", mode: 0o6775)
        try sys("chown(\(chowned))", chown(chowned, TestUser.uid, gid_t.max))
        try expectPrivileges(chowned, mode: 0o775, capability: false, "chown by root")

        try volume.remountChecked("after the changes")
        try expectPrivileges(volume.path("write-by-member"), mode: 0o775, capability: false, "after a remount")
        try volume.unmount()
    }

    private func writeAsRoot(_ path: String) throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw HarnessError("open(\(path)): \(errnoName(errno))") }
        defer { close(fd) }
        let bytes = [UInt8](repeating: 0x41, count: 16)
        guard pwrite(fd, bytes, bytes.count, 0) == bytes.count else { throw HarnessError("pwrite(\(path)): \(errnoName(errno))") }
    }

    /// As root: a program of root's, group TestUser.group, mode 06775, with capabilities.
    private func makeProgram(_ volume: TestVolume, _ name: String, length: Int, mode: mode_t = programMode,
                             capability: Bool = true, _ context: String) throws -> String {
        let path = volume.path(name)
        try createFile(path, contents: TestContent.bytes(seed: 2, count: length), mode: 0o755)
        try sys("chown(\(path))", chown(path, 0, TestUser.group))
        try sys("chmod(\(path))", chmod(path, mode))
        if capability { try setXattr(path, Self.capabilityName, Self.capability) }
        try expectPrivileges(path, mode: mode, capability: capability, "\(context), before")
        return path
    }

    private func expectPrivileges(_ path: String, mode: mode_t, capability: Bool, _ context: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try fileStatus(path)
        XCTAssertEqual(String(st.st_mode & 0o7777, radix: 8), String(mode, radix: 8), "\(context): mode", file: file, line: line)
        let names = try listXattrs(path)
        XCTAssertEqual(names.contains(Self.capabilityName), capability, "\(context): \(Self.capabilityName) in \(names)",
                       file: file, line: line)
        if capability, names.contains(Self.capabilityName) {
            XCTAssertEqual(try getXattr(path, Self.capabilityName), Self.capability, "\(context): capability value",
                           file: file, line: line)
        }
    }
}
