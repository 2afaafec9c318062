import ExtentFS
import ExtentFSCore
import Foundation

/// The small images the fuzzer damages: real ones, made through the engine, holding a bit of
/// everything a checkpoint and a log record can hold (directories, data with holes, shared
/// extents, unwritten extents, xattrs, a symlink, a hard link, a fifo, an open unlinked file),
/// at several block sizes, some cleanly unmounted (everything in the checkpoint) and some
/// copied while mounted after an fsync (records in the log after the checkpoint, as after a crash).
/// mkfs makes version 6 (the metadata tree, with a label here and flags on one file); the
/// crashed ones are also kept as version 3 (whole checkpoints, VersionThreeImages), which mount
/// still reads, so that both paths are fuzzed.
enum BaseImages {
    struct Image {
        var name: String
        var bytes: [UInt8]
    }

    static func make(in directory: String) throws -> [Image] {
        var images: [Image] = []
        for blockSize in [512, 1024, 4096] {
            for crashed in [false, true] {
                let path = directory + "/base-bs\(blockSize)\(crashed ? "-crashed" : "").img"
                try build(path, blockSize: blockSize, crashed: crashed)
                let name = URL(fileURLWithPath: path).lastPathComponent
                let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
                images.append(Image(name: name, bytes: bytes))
                if crashed {
                    guard let old = VersionThreeImages.convert(bytes) else { throw FuzzerError("\(name) did not convert to version 3") }
                    // A converter that made a damaged image would fuzz nothing but its own mistake.
                    try Data(old).write(to: URL(fileURLWithPath: path))
                    let problems = try Volume.check(image: path)
                    guard problems.isEmpty else { throw FuzzerError("\(name) as version 3 is not clean: \(problems)") }
                    images.append(Image(name: name.replacingOccurrences(of: ".img", with: "-v3.img"), bytes: old))
                }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        return images
    }

    private static func build(_ path: String, blockSize: Int, crashed: Bool) throws {
        var format = FormatOptions()
        format.blockSize = blockSize
        format.size = 2 << 20
        format.force = true
        format.label = Array("fuzzed".utf8)
        // The decoder fuzzer's superblock's (DecoderFuzzing.sampleSuperblock): the tree seeds cut
        // from these images then have name index items that hash where that superblock says.
        format.uuid = [UInt8](repeating: 0x5A, count: 16)
        try Volume.format(image: path, options: format)
        var options = MountOptions()
        options.cacheBytes = 1 << 20
        options.commitInterval = 3600
        let fs = try FileSystem.mount(image: path, options: options)
        let root = FileSystem.rootInode
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        func write(_ ino: InodeNumber, _ data: [UInt8], at offset: UInt64) throws {
            _ = try data.withUnsafeBytes { try fs.write(ino, offset: offset, $0) }
        }
        let directory = try fs.mkdir(parent: root, name: bytes("dir"), mode: 0o755, owner: .root).ino
        let data = try fs.create(parent: directory, name: bytes("data"), mode: 0o644, flags: 0, owner: .root).ino
        try write(data, (0..<(6 * blockSize)).map { UInt8(truncatingIfNeeded: $0 &* 31) }, at: 0)
        try write(data, bytes("after a hole"), at: UInt64(12 * blockSize))
        // Flags that leave the file writable: the fuzzer's workload writes to every file.
        try fs.setFlags(data, [.noDump, .noAccessTime], by: .root)
        let copy = try fs.create(parent: root, name: bytes("copy"), mode: 0o600, flags: 0, owner: .root).ino
        try fs.sync()
        _ = try fs.clone(from: data, sourceOffset: 0, to: copy, destinationOffset: UInt64(blockSize), length: UInt64(4 * blockSize))
        try fs.fallocate(copy, offset: UInt64(8 * blockSize), length: UInt64(2 * blockSize), mode: .keepSize)
        try fs.setxattr(data, name: bytes("user.note"), value: bytes("fuzz me"), flags: [])
        try fs.setxattr(directory, name: bytes("security.label"), value: [1, 2, 3, 4], flags: [])
        _ = try fs.symlink(parent: root, name: bytes("link"), target: bytes("dir/data"), owner: .root)
        _ = try fs.link(data, newParent: root, newName: bytes("hard"))
        _ = try fs.mknod(parent: directory, name: bytes("fifo"), mode: 0o010644, rdev: 0, owner: .root)
        let orphan = try fs.create(parent: root, name: bytes("orphan"), mode: 0o644, flags: 0, owner: .root).ino
        try write(orphan, bytes("still open"), at: 0)
        try fs.sync()
        try fs.unlink(parent: root, name: bytes("orphan"))
        if crashed {
            // Changes after the last checkpoint, in log records only.
            let late = try fs.create(parent: directory, name: bytes("late"), mode: 0o644, flags: 0, owner: .root).ino
            try write(late, bytes("logged, not checkpointed"), at: 0)
            try fs.rename(parent: root, name: bytes("copy"), newParent: directory, newName: bytes("copy-moved"), flags: [])
            try fs.setxattr(late, name: bytes("user.late"), value: [9], flags: [])
            try fs.fallocate(data, offset: 0, length: UInt64(blockSize), mode: [.punchHole, .keepSize])
            try fs.fsync(late, dataOnly: false)
            try fs.sync()
            let crashCopy = path + ".crash"
            try? FileManager.default.removeItem(atPath: crashCopy)
            try FileManager.default.copyItem(atPath: path, toPath: crashCopy)
            try fs.unmount()
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: crashCopy, toPath: path)
        } else {
            try fs.unmount()
        }
    }
}
