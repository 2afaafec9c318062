import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// The tree the round-trip test writes: file sizes around block and page boundaries, nested
/// directories, hard links, symlinks, renames, xattrs and a sparse file. It can build itself and
/// later check, from its own description, that a mount still holds exactly that.
struct SampleTree {
    let blockSize: Int

    static let sparseSize = 1 << 30
    static let sparseTail: [UInt8] = Array("tail!".utf8)

    struct File {
        var path: String
        var seed: UInt64
        var size: Int
        var mode: mode_t
    }

    var directories: [(path: String, mode: mode_t)] {
        [("files", 0o755), ("a", 0o755), ("a/b", 0o750), ("a/b/c", 0o700), ("a/b/c/d", 0o755),
         ("a/b/empty", 0o755), ("links", 0o755), ("renames", 0o755), ("renames/dir-before", 0o711)]
    }

    var fileSizes: [Int] {
        let bs = blockSize
        return Array(Set([0, 1, bs - 1, bs, bs + 1, 4095, 4096, 4097, 5 * bs + 17, (3 << 20) + 123])).sorted()
    }

    /// Files as they end up after the renames.
    var files: [File] {
        let modes: [mode_t] = [0o644, 0o600, 0o755, 0o444]
        var result = fileSizes.enumerated().map { index, size in
            File(path: "files/size-\(size)", seed: UInt64(size) &* 31 &+ 7, size: size, mode: modes[index % modes.count])
        }
        result.append(File(path: "a/b/c/d/deep.bin", seed: 77, size: 100_000, mode: 0o640))
        result.append(File(path: "links/original", seed: 99, size: 8193, mode: 0o644))
        result.append(File(path: "renames/after.txt", seed: 5, size: 5000, mode: 0o644))
        result.append(File(path: "renames/dir-after/inner.bin", seed: 6, size: 3000, mode: 0o600))
        result.append(File(path: "a/b/moved.bin", seed: 8, size: 2 * blockSize + 1, mode: 0o644))
        return result
    }

    /// Extra names for links/original; it has nlink == 1 + count.
    let hardLinks = ["links/second", "a/b/third"]

    var symlinks: [(path: String, target: String)] {
        [("links/to-file", "../files/size-4096"),
         ("links/dangling", "/nonexistent/extentfs/target"),
         ("links/long", String(repeating: "long-component/", count: 20) + "end"),
         ("a/to-dir", "b/c")]
    }

    var xattrs: [(path: String, name: String, value: [UInt8])] {
        [("files/size-4096", "user.empty", []),
         ("files/size-4096", "user.small", Array("hello".utf8)),
         ("files/size-4096", "user.medium", TestContent.bytes(seed: 1234, count: 200)),
         ("a", "user.directory", Array("on a directory".utf8)),
         ("links/original", "user.shared", Array("seen through every link".utf8))]
    }

    /// Names that existed before a rename or unlink and must stay gone.
    let vanished = ["renames/before.txt", "renames/dir-before", "files/moving", "links/unlinked-link"]

    // MARK: - Build

    func build(in root: String) throws {
        for (path, mode) in directories {
            try makeDirectory(root + "/" + path, mode: mode)
        }
        for file in files {
            let initialPath: String
            switch file.path {
            case "renames/after.txt": initialPath = "renames/before.txt"
            case "renames/dir-after/inner.bin": initialPath = "renames/dir-before/inner.bin"
            case "a/b/moved.bin": initialPath = "files/moving"
            default: initialPath = file.path
            }
            try createFile(root + "/" + initialPath, contents: TestContent.bytes(seed: file.seed, count: file.size), mode: file.mode)
        }
        try sys("rename file", rename(root + "/renames/before.txt", root + "/renames/after.txt"))
        try sys("rename directory", rename(root + "/renames/dir-before", root + "/renames/dir-after"))
        try sys("rename across directories", rename(root + "/files/moving", root + "/a/b/moved.bin"))

        for name in hardLinks {
            try sys("link \(name)", link(root + "/links/original", root + "/" + name))
        }
        try sys("link unlinked-link", link(root + "/links/original", root + "/links/unlinked-link"))
        try sys("unlink unlinked-link", unlink(root + "/links/unlinked-link"))

        for (path, target) in symlinks {
            try sys("symlink \(path)", symlink(target, root + "/" + path))
        }

        for (path, name, value) in xattrs {
            try setXattr(root + "/" + path, name, value)
        }
        try setXattr(root + "/files/size-1", "user.removed", Array("temporary".utf8))
        try removeXattr(root + "/files/size-1", "user.removed")

        let fd = try openFile(root + "/sparse.bin", O_WRONLY | O_CREAT | O_EXCL)
        defer { close(fd) }
        try writeAll(fd, SampleTree.sparseTail, at: SampleTree.sparseSize - SampleTree.sparseTail.count, path: "sparse.bin")
        try sys("fsync sparse.bin", fsync(fd))
    }

    // MARK: - Verify

    func verify(in root: String, _ context: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for (path, mode) in directories where path != "renames/dir-before" {
            let st = try fileStatus(root + "/" + path)
            XCTAssertEqual(st.st_mode & S_IFMT, S_IFDIR, "\(context): \(path) is not a directory", file: file, line: line)
            XCTAssertEqual(st.st_mode & 0o7777, mode, "\(context): \(path) mode", file: file, line: line)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/a/b/empty"), [],
                       "\(context): a/b/empty is not empty", file: file, line: line)

        for entry in files {
            let path = root + "/" + entry.path
            let st = try fileStatus(path)
            XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG, "\(context): \(entry.path) type", file: file, line: line)
            XCTAssertEqual(st.st_mode & 0o7777, entry.mode, "\(context): \(entry.path) mode", file: file, line: line)
            XCTAssertEqual(Int(st.st_size), entry.size, "\(context): \(entry.path) size", file: file, line: line)
            let expected = TestContent.bytes(seed: entry.seed, count: entry.size)
            let actual = try readWholeFile(path)
            if actual != expected {
                XCTFail("\(context): \(entry.path) content differs \(firstDifference(expected, actual))", file: file, line: line)
            }
        }

        let original = try fileStatus(root + "/links/original")
        XCTAssertEqual(Int(original.st_nlink), 1 + hardLinks.count, "\(context): nlink of links/original", file: file, line: line)
        for name in hardLinks {
            let st = try fileStatus(root + "/" + name)
            XCTAssertEqual(st.st_ino, original.st_ino, "\(context): \(name) is not the same inode as links/original", file: file, line: line)
            XCTAssertEqual(st.st_nlink, original.st_nlink, "\(context): nlink of \(name)", file: file, line: line)
        }

        for (path, target) in symlinks {
            let st = try fileStatus(root + "/" + path)
            XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "\(context): \(path) is not a symlink", file: file, line: line)
            XCTAssertEqual(try readSymlink(root + "/" + path), target, "\(context): readlink \(path)", file: file, line: line)
        }
        var followed = stat()
        try sys("stat through links/to-file", stat(root + "/links/to-file", &followed))
        XCTAssertEqual(followed.st_size, 4096, "\(context): size through links/to-file", file: file, line: line)
        XCTAssertEqual(try readWholeFile(root + "/a/to-dir/d/deep.bin").count, 100_000,
                       "\(context): reading through the a/to-dir symlink", file: file, line: line)

        for (path, name, value) in xattrs {
            XCTAssertEqual(try getXattr(root + "/" + path, name), value, "\(context): xattr \(name) of \(path)", file: file, line: line)
        }
        XCTAssertEqual(try getXattr(root + "/a/b/third", "user.shared"), Array("seen through every link".utf8),
                       "\(context): xattr through a hard link", file: file, line: line)
        XCTAssertEqual(try listXattrs(root + "/files/size-4096"), ["user.empty", "user.medium", "user.small"],
                       "\(context): listxattr files/size-4096", file: file, line: line)
        XCTAssertErrno(ENODATA, "\(context): getxattr of a removed attribute", file: file, line: line) {
            Linux.lgetxattr(root + "/files/size-1", "user.removed", nil, 0)
        }

        for name in vanished {
            var st = stat()
            XCTAssertErrno(ENOENT, "\(context): lstat \(name) after rename/unlink", file: file, line: line) { lstat(root + "/" + name, &st) }
        }

        try verifySparse(root + "/sparse.bin", context, file: file, line: line)
    }

    private func verifySparse(_ path: String, _ context: String, file: StaticString, line: UInt) throws {
        let size = SampleTree.sparseSize
        let tailOffset = size - SampleTree.sparseTail.count
        let st = try fileStatus(path)
        XCTAssertEqual(Int(st.st_size), size, "\(context): sparse.bin size", file: file, line: line)
        XCTAssertLessThanOrEqual(Int(st.st_blocks), (blockSize / 512) * 2,
                                 "\(context): sparse.bin allocates \(st.st_blocks) sectors for \(SampleTree.sparseTail.count) bytes",
                                 file: file, line: line)

        let fd = try openFile(path, O_RDONLY)
        defer { close(fd) }
        for offset in [0, size / 2 + 12345, tailOffset - 65536] {
            let hole = try readRange(fd, offset: offset, count: 65536, path: path)
            XCTAssertEqual(hole.count, 65536, "\(context): short read in the hole at \(offset)", file: file, line: line)
            XCTAssertTrue(hole.allSatisfy { $0 == 0 }, "\(context): hole at \(offset) does not read as zeros", file: file, line: line)
        }
        XCTAssertEqual(try readRange(fd, offset: tailOffset, count: 100, path: path), SampleTree.sparseTail,
                       "\(context): sparse.bin tail", file: file, line: line)

        // SEEK_DATA may round down to the block (or page) that holds the tail, no further.
        let data = lseek(fd, 0, Linux.seekData)
        let earliest = tailOffset / max(blockSize, 4096) * max(blockSize, 4096)
        XCTAssertTrue(data >= earliest && data <= tailOffset,
                      "\(context): SEEK_DATA from 0 gave \(data), expected within [\(earliest), \(tailOffset)]", file: file, line: line)
        XCTAssertEqual(lseek(fd, 0, Linux.seekHole), 0, "\(context): SEEK_HOLE from 0", file: file, line: line)
        XCTAssertEqual(lseek(fd, off_t(tailOffset), Linux.seekHole), off_t(size), "\(context): SEEK_HOLE from the tail", file: file, line: line)
        XCTAssertErrno(ENXIO, "\(context): SEEK_DATA past the end", file: file, line: line) { lseek(fd, off_t(size + 1), Linux.seekData) }
    }
}

func firstDifference(_ expected: [UInt8], _ actual: [UInt8]) -> String {
    if let index = zip(expected, actual).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
        return "(first at byte \(index): expected \(expected[index]), found \(actual[index]); sizes \(expected.count) vs \(actual.count))"
    }
    return "(sizes \(expected.count) vs \(actual.count))"
}
