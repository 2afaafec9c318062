import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Nanosecond timestamps, chmod and chown go through setattr and survive a remount exactly.
final class TimestampTests: XCTestCase {
    /// Clocks in the kernel and the daemon may lag the test's clock by a tick.
    static let clockSlack: Int64 = 100_000_000

    struct ExpectedTimes {
        var path: String
        var atime: Int64
        var mtime: Int64
    }

    struct ExpectedOwnership {
        var path: String
        var uid: uid_t
        var gid: gid_t
        /// nil for symlinks, whose permission bits are not meaningful.
        var permissions: mode_t?
    }

    func testTimestampsAndOwnershipSurviveRemount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            let root = volume.mountPoint

            let start = realtimeNanoseconds()
            try createFile(root + "/fresh", contents: TestContent.bytes(seed: 3, count: 5000))
            let end = realtimeNanoseconds()
            let fresh = try fileStatus(root + "/fresh")
            for (name, value) in [("mtime", fresh.st_mtim.nanoseconds), ("ctime", fresh.st_ctim.nanoseconds)] {
                XCTAssertTrue(value >= start - TimestampTests.clockSlack && value <= end + TimestampTests.clockSlack,
                              "\(context): \(name) of a new file is \(value), written between \(start) and \(end)")
            }

            var times: [ExpectedTimes] = []
            try createFile(root + "/stamped", contents: [1, 2, 3])
            times.append(try setTimes(root, "stamped", atime: (1_500_000_000, 111_222_333), mtime: (1_600_000_000, 987_654_321)))
            try makeDirectory(root + "/stamped-dir")
            times.append(try setTimes(root, "stamped-dir", atime: (1_400_000_000, 1), mtime: (1_450_000_000, 999_999_999)))

            // UTIME_OMIT leaves atime alone while mtime changes.
            try createFile(root + "/omit", contents: [4])
            var omit = try setTimes(root, "omit", atime: (1_300_000_000, 5), mtime: (1_300_000_001, 6))
            var partial = [timespec(tv_sec: 0, tv_nsec: Linux.utimeOmit), timespec(tv_sec: 1_700_000_000, tv_nsec: 123)]
            try sys("\(context): utimensat omit atime", utimensat(AT_FDCWD, root + "/omit", &partial, 0))
            omit.mtime = 1_700_000_000 * 1_000_000_000 + 123
            times.append(omit)

            var owners: [ExpectedOwnership] = []
            try createFile(root + "/owned", contents: [5])
            try makeDirectory(root + "/owned-dir")
            try sys("symlink", symlink("owned", root + "/owned-link"))
            let mtimeBeforeChange = try fileStatus(root + "/owned").st_mtim.nanoseconds
            let changeStart = realtimeNanoseconds()
            try sys("\(context): chown owned", chown(root + "/owned", 1234, 5678))
            try sys("\(context): chmod owned", chmod(root + "/owned", 0o640))
            try sys("\(context): chown owned-dir", chown(root + "/owned-dir", 4321, 8765))
            try sys("\(context): chmod owned-dir", chmod(root + "/owned-dir", 0o1750))
            try sys("\(context): lchown owned-link", lchown(root + "/owned-link", 111, 222))
            owners.append(ExpectedOwnership(path: "owned", uid: 1234, gid: 5678, permissions: 0o640))
            owners.append(ExpectedOwnership(path: "owned-dir", uid: 4321, gid: 8765, permissions: 0o1750))
            owners.append(ExpectedOwnership(path: "owned-link", uid: 111, gid: 222, permissions: nil))

            let owned = try fileStatus(root + "/owned")
            XCTAssertEqual(owned.st_mtim.nanoseconds, mtimeBeforeChange, "\(context): chmod/chown changed mtime")
            XCTAssertGreaterThanOrEqual(owned.st_ctim.nanoseconds, changeStart - TimestampTests.clockSlack,
                                        "\(context): chmod/chown did not update ctime")

            try check(root, times, owners, "\(context), before unmount")
            try volume.remountChecked(context)
            try check(root, times, owners, "\(context), after remount")
            try volume.unmount()
            try volume.requireClean(context)
        }
    }

    private func setTimes(_ root: String, _ path: String, atime: (Int, Int), mtime: (Int, Int)) throws -> ExpectedTimes {
        var values = [timespec(tv_sec: atime.0, tv_nsec: atime.1), timespec(tv_sec: mtime.0, tv_nsec: mtime.1)]
        try sys("utimensat \(path)", utimensat(AT_FDCWD, root + "/" + path, &values, 0))
        return ExpectedTimes(path: path, atime: Int64(atime.0) * 1_000_000_000 + Int64(atime.1),
                             mtime: Int64(mtime.0) * 1_000_000_000 + Int64(mtime.1))
    }

    private func check(_ root: String, _ times: [ExpectedTimes], _ owners: [ExpectedOwnership], _ context: String) throws {
        for expected in times {
            let st = try fileStatus(root + "/" + expected.path)
            XCTAssertEqual(st.st_atim.nanoseconds, expected.atime, "\(context): atime of \(expected.path)")
            XCTAssertEqual(st.st_mtim.nanoseconds, expected.mtime, "\(context): mtime of \(expected.path)")
        }
        for expected in owners {
            let st = try fileStatus(root + "/" + expected.path)
            XCTAssertEqual(st.st_uid, expected.uid, "\(context): uid of \(expected.path)")
            XCTAssertEqual(st.st_gid, expected.gid, "\(context): gid of \(expected.path)")
            if let permissions = expected.permissions {
                XCTAssertEqual(st.st_mode & 0o7777, permissions, "\(context): mode of \(expected.path)")
            }
        }
    }
}
