import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The errors POSIX programs rely on, seen through real system calls on the mount.
final class PosixErrorTests: XCTestCase {
    /// The engine's largest file is 2^50 bytes.
    static let beyondMaxFileSize: off_t = 1 << 51

    func testErrnoValuesThroughMount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "64M")
            try volume.mount()
            try checkErrors(volume, outside: harness.workDirectory, "bs \(blockSize)")
            try volume.unmount()
            try volume.requireClean("bs \(blockSize)")
        }
    }

    func testStatfsCountsRealBlocksAndBlksizeIsBlockSize() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let context = "bs \(blockSize)"
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "128M")
            try volume.mount()

            try createFile(volume.path("small"), contents: [1, 2, 3])
            XCTAssertEqual(Int(try fileStatus(volume.path("small")).st_blksize), blockSize, "\(context): st_blksize of a file")

            let before = try fileSystemStatus(volume.mountPoint)
            let unit = Int(before.f_frsize != 0 ? before.f_frsize : before.f_bsize)
            XCTAssertLessThanOrEqual(Int(before.f_blocks) * unit, 128 << 20, "\(context): f_blocks exceeds the image")
            XCTAssertGreaterThanOrEqual(Int(before.f_blocks) * unit, 64 << 20, "\(context): f_blocks is under half the image")
            XCTAssertLessThanOrEqual(before.f_bfree, before.f_blocks, "\(context): f_bfree > f_blocks")
            XCTAssertLessThanOrEqual(before.f_bavail, before.f_bfree, "\(context): f_bavail > f_bfree")

            let size = 10 << 20
            let fd = try openFile(volume.path("ten-mib"), O_WRONLY | O_CREAT | O_EXCL)
            for chunk in 0..<10 {
                try writeAll(fd, TestContent.bytes(seed: UInt64(chunk), count: 1 << 20), at: chunk << 20, path: "ten-mib")
            }
            try sys("\(context): fsync ten-mib", fsync(fd))
            try closeFile(fd)

            let after = try fileSystemStatus(volume.mountPoint)
            let used = (Int(before.f_bfree) - Int(after.f_bfree)) * unit
            XCTAssertGreaterThanOrEqual(used, size, "\(context): writing 10 MiB took only \(used) bytes off f_bfree")
            XCTAssertLessThanOrEqual(used, size + (2 << 20), "\(context): writing 10 MiB took \(used) bytes off f_bfree")
            let allocated = Int(try fileStatus(volume.path("ten-mib")).st_blocks) * 512
            XCTAssertTrue(allocated >= size && allocated <= size + (1 << 20),
                          "\(context): st_blocks of a dense 10 MiB file says \(allocated) bytes")

            try volume.unmount()
            try volume.requireClean(context)
        }
    }

    private func checkErrors(_ volume: TestVolume, outside: String, _ context: String) throws {
        let root = volume.mountPoint
        try createFile(root + "/file", contents: Array("file".utf8))
        try createFile(root + "/other", contents: Array("other".utf8))
        try makeDirectory(root + "/dir")
        try makeDirectory(root + "/full")
        try createFile(root + "/full/child", contents: [])
        try makeDirectory(root + "/empty")

        // ENAMETOOLONG: 255 bytes is the longest name, 256 is refused.
        let longest = String(repeating: "n", count: 255)
        try createFile(root + "/" + longest, contents: [1])
        try sys("\(context): unlink 255-byte name", unlink(root + "/" + longest))
        let tooLong = root + "/" + String(repeating: "n", count: 256)
        XCTAssertErrno(ENAMETOOLONG, "\(context): create a 256-byte name") { open(tooLong, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644) }
        XCTAssertErrno(ENAMETOOLONG, "\(context): mkdir a 256-byte name") { mkdir(tooLong, 0o755) }
        try createFile(root + "/rename-source", contents: [2])
        XCTAssertErrno(ENAMETOOLONG, "\(context): rename to a 256-byte name") { rename(root + "/rename-source", tooLong) }

        // EEXIST
        XCTAssertErrno(EEXIST, "\(context): mkdir an existing directory") { mkdir(root + "/dir", 0o755) }
        XCTAssertErrno(EEXIST, "\(context): mkdir over a file") { mkdir(root + "/file", 0o755) }
        XCTAssertErrno(EEXIST, "\(context): link onto an existing name") { link(root + "/file", root + "/other") }
        XCTAssertErrno(EEXIST, "\(context): symlink onto an existing name") { symlink("target", root + "/other") }
        XCTAssertErrno(EEXIST, "\(context): O_CREAT|O_EXCL of an existing file") {
            open(root + "/file", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        }

        // ENOTEMPTY
        XCTAssertErrno(ENOTEMPTY, "\(context): rmdir a non-empty directory") { rmdir(root + "/full") }
        XCTAssertErrno(ENOTEMPTY, "\(context): rename a directory over a non-empty one") { rename(root + "/empty", root + "/full") }

        // EISDIR
        XCTAssertErrno(EISDIR, "\(context): open a directory O_WRONLY") { open(root + "/dir", O_WRONLY | O_CLOEXEC) }
        XCTAssertErrno(EISDIR, "\(context): unlink a directory") { unlink(root + "/dir") }
        XCTAssertErrno(EISDIR, "\(context): rename a file over a directory") { rename(root + "/file", root + "/dir") }

        // ENOTDIR
        XCTAssertErrno(ENOTDIR, "\(context): open a path through a file") { open(root + "/file/x", O_RDONLY | O_CLOEXEC) }
        XCTAssertErrno(ENOTDIR, "\(context): mkdir under a file") { mkdir(root + "/file/x", 0o755) }
        XCTAssertErrno(ENOTDIR, "\(context): rmdir a file") { rmdir(root + "/file") }
        XCTAssertErrno(ENOTDIR, "\(context): rename a directory over a file") { rename(root + "/empty", root + "/file") }

        // ENOENT
        XCTAssertErrno(ENOENT, "\(context): open a missing file") { open(root + "/missing", O_RDONLY | O_CLOEXEC) }
        XCTAssertErrno(ENOENT, "\(context): unlink a missing file") { unlink(root + "/missing") }

        // EXDEV, both directions.
        let outsideFile = outside + "/exdev-outside"
        XCTAssertErrno(EXDEV, "\(context): rename from the mount to another filesystem") { rename(root + "/file", outsideFile) }
        try createFile(outsideFile, contents: [9])
        defer { unlink(outsideFile) }
        XCTAssertErrno(EXDEV, "\(context): rename from another filesystem into the mount") { rename(outsideFile, root + "/from-outside") }

        try checkRenameFlags(root, context)
        try checkXattrErrors(root, context)

        // EFBIG: past the largest file the engine can hold.
        let fd = try openFile(root + "/huge", O_RDWR | O_CREAT | O_EXCL)
        defer { close(fd) }
        XCTAssertErrno(EFBIG, "\(context): ftruncate to 2^51") { ftruncate(fd, PosixErrorTests.beyondMaxFileSize) }
        var st = stat()
        try sys("fstat huge", fstat(fd, &st))
        XCTAssertEqual(st.st_size, 0, "\(context): a refused ftruncate changed the size")
    }

    private func checkRenameFlags(_ root: String, _ context: String) throws {
        try createFile(root + "/left", contents: Array("LEFT".utf8))
        try createFile(root + "/right", contents: Array("RIGHT".utf8))

        XCTAssertErrno(EEXIST, "\(context): RENAME_NOREPLACE onto an existing name") {
            Linux.renameat2(AT_FDCWD, root + "/left", AT_FDCWD, root + "/right", Linux.renameNoReplace)
        }
        XCTAssertEqual(try readWholeFile(root + "/right"), Array("RIGHT".utf8), "\(context): NOREPLACE clobbered the target")
        try sys("\(context): RENAME_NOREPLACE to a free name",
                Linux.renameat2(AT_FDCWD, root + "/left", AT_FDCWD, root + "/left2", Linux.renameNoReplace))
        try sys("\(context): rename back", rename(root + "/left2", root + "/left"))

        let leftInode = try fileStatus(root + "/left").st_ino
        let rightInode = try fileStatus(root + "/right").st_ino
        try sys("\(context): RENAME_EXCHANGE of two files",
                Linux.renameat2(AT_FDCWD, root + "/left", AT_FDCWD, root + "/right", Linux.renameExchange))
        XCTAssertEqual(try readWholeFile(root + "/left"), Array("RIGHT".utf8), "\(context): left after RENAME_EXCHANGE")
        XCTAssertEqual(try readWholeFile(root + "/right"), Array("LEFT".utf8), "\(context): right after RENAME_EXCHANGE")
        XCTAssertEqual(try fileStatus(root + "/left").st_ino, rightInode, "\(context): inode of left after RENAME_EXCHANGE")
        XCTAssertEqual(try fileStatus(root + "/right").st_ino, leftInode, "\(context): inode of right after RENAME_EXCHANGE")

        try makeDirectory(root + "/swapdir")
        try createFile(root + "/swapdir/inside", contents: [1])
        try sys("\(context): RENAME_EXCHANGE of a file and a directory",
                Linux.renameat2(AT_FDCWD, root + "/left", AT_FDCWD, root + "/swapdir", Linux.renameExchange))
        XCTAssertEqual(try fileStatus(root + "/left").st_mode & S_IFMT, S_IFDIR, "\(context): left is the directory now")
        XCTAssertEqual(try readWholeFile(root + "/left/inside"), [1], "\(context): the exchanged directory keeps its entries")
        XCTAssertEqual(try readWholeFile(root + "/swapdir"), Array("RIGHT".utf8), "\(context): swapdir is the file now")

        XCTAssertErrno(ENOENT, "\(context): RENAME_EXCHANGE with a missing target") {
            Linux.renameat2(AT_FDCWD, root + "/right", AT_FDCWD, root + "/missing", Linux.renameExchange)
        }
    }

    private func checkXattrErrors(_ root: String, _ context: String) throws {
        let path = root + "/other"
        XCTAssertErrno(ENODATA, "\(context): getxattr of a missing attribute") { Linux.lgetxattr(path, "user.missing", nil, 0) }
        XCTAssertErrno(ENODATA, "\(context): XATTR_REPLACE of a missing attribute") {
            Linux.lsetxattr(path, "user.missing", "v", 1, Linux.xattrReplace)
        }
        try setXattr(path, "user.present", Array("v".utf8), flags: Linux.xattrCreate)
        XCTAssertErrno(EEXIST, "\(context): XATTR_CREATE of an existing attribute") {
            Linux.lsetxattr(path, "user.present", "w", 1, Linux.xattrCreate)
        }
        try setXattr(path, "user.longer", Array("a longer value".utf8))
        var oneByte: UInt8 = 0
        XCTAssertErrno(ERANGE, "\(context): getxattr into a too-small buffer") {
            Linux.lgetxattr(path, "user.longer", &oneByte, 1)
        }
    }
}
