import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// xfstests generic/683-685: an unprivileged fallocate (preallocation, punch, zero range) of a
/// file with set-ID bits takes them as a write would: 6666 becomes 666 when the caller is not in
/// the file's group, and a member keeps a set-group-ID bit without group execute. `stat -c %a`
/// right afterwards must show it, as those tests look: it asks statx for the mode alone, and
/// after a preallocation the kernel dropped only the size and times it caches, so it kept
/// showing the mode from before for up to a second (a full stat asks for the size too, and so
/// refetched everything).
final class FallocatePrivilegeTests: XCTestCase {
    func testUnprivilegedFallocateTakesTheSetIDBitsAtOnce() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mountForOtherUsers(arguments: ["-o", "suid"])
        try sys("chmod(\(volume.mountPoint))", chmod(volume.mountPoint, 0o777))
        let cases: [(name: String, arguments: [String], mode: mode_t, group: gid_t, member: Bool, expected: mode_t)] = [
            ("preallocate", ["-o", "0", "-l", "4096"], 0o6666, 0, false, 0o666),
            ("preallocate past EOF, keep size", ["-n", "-o", "65536", "-l", "8192"], 0o6666, 0, false, 0o666),
            ("punch", ["-p", "-o", "0", "-l", "4096"], 0o6666, 0, false, 0o666),
            ("zero range", ["-z", "-o", "0", "-l", "4096"], 0o6666, 0, false, 0o666),
            ("preallocate by a group member", ["-o", "0", "-l", "4096"], 0o2666, TestUser.group, true, 0o2666),
            ("preallocate, group may execute", ["-o", "0", "-l", "4096"], 0o2676, TestUser.group, true, 0o676),
        ]
        for (index, (name, arguments, mode, group, member, expected)) in cases.enumerated() {
            let path = volume.path("file-\(index)")
            try createFile(path, contents: TestContent.bytes(seed: UInt64(index), count: 65536), mode: 0o666)
            try sys("chown(\(path))", chown(path, 0, group))
            try sys("chmod(\(path))", chmod(path, mode))
            XCTAssertEqual(try fileStatus(path).st_mode & 0o7777, mode, "\(name): before")
            var setpriv = ["--reuid=\(TestUser.uid)", "--regid=\(TestUser.gid)"]
            setpriv += member ? ["--groups=\(TestUser.group)"] : ["--clear-groups"]
            let result = try ProcessRunner.run("/usr/bin/setpriv", setpriv + ["fallocate"] + arguments + [path], timeout: 60)
            XCTAssertTrue(result.succeeded, "\(name): \(result)")
            let mode = try ProcessRunner.run("/usr/bin/stat", ["-c", "%a", path], timeout: 30)
            XCTAssertEqual(mode.stdout.trimmingCharacters(in: .whitespacesAndNewlines), String(expected, radix: 8), "\(name): right after")
        }
        try volume.remountChecked("after the fallocates")
        XCTAssertEqual(try fileStatus(volume.path("file-0")).st_mode & 0o7777, 0o666, "after a remount")
        try volume.unmount()
    }
}
