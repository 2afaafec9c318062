import ExtentFS
import ExtentFSCore
import Foundation
import struct SystemPackage.Errno

/// What the fuzzer does with one damaged image, in a child process of its own (a trap kills only
/// the child; the parent sees the signal, or a hang past its timeout): fsck; an in-process
/// mount; a walk of the whole tree (names, attributes, contents, link targets, xattrs); a small
/// write workload; unmount; fsck again. Errors are fine (a damaged image may be refused, a
/// request may fail); traps, hangs and these contradictions are not:
/// - fsck calls the image clean but mount refuses it;
/// (fsck refusing an image that mount accepts is not one: mount reads only what it needs (the
/// superblocks, internal nodes, object 0, the root and orphans: issue 9), so damage elsewhere is
/// met when read, as EIO. The outcome line says whether the walk met it.)
/// - an image fsck called clean is no longer clean after the workload and a clean unmount.
/// Each step is announced on stdout first, so the parent can say where a child died.
enum ImageCheck {
    static let contradictionStatus: Int32 = 10

    static func run(image: String) -> Int32 {
        announce("fsck")
        let before: Result<[String], Error> = Result { try Volume.check(image: image) }
        var options = MountOptions()
        options.cacheBytes = 2 << 20
        options.commitInterval = 3600
        announce("mount")
        let fs: FileSystem
        do {
            fs = try FileSystem.mount(image: image, options: options)
        } catch {
            if case .success(let problems) = before, problems.isEmpty {
                return contradiction("fsck found the image clean but mount refused it: \(error)")
            }
            print("outcome: refused (fsck: \(summary(before)); mount: \(error))")
            return 0
        }
        announce("walk")
        let files = walk(fs)
        var reached = ""
        if case .failure = before {
            // Every inode number, read whole: damage mount did not read is met here.
            let next = fs.nextInodeNumber
            var failures = 0
            for ino in FileSystem.rootInode..<min(next, FileSystem.rootInode + 100_000) {
                do { _ = try fs.getattr(ino); _ = try fs.listxattr(ino) } catch let error as Errno where error == .ioError { failures += 1 } catch {}
            }
            reached = failures > 0 ? "; the walk met the damage (\(failures) inodes gave EIO)" : "; the walk did not meet the damage"
        }
        announce("write")
        workload(fs, files: files)
        announce("unmount")
        let unmounted = Result { try fs.unmount() }
        announce("fsck after")
        let after = Result { try Volume.check(image: image) }
        if case .success(let problems) = before, problems.isEmpty, case .success = unmounted {
            guard case .success(let now) = after, now.isEmpty else {
                return contradiction("an image fsck found clean is not after a workload and a clean unmount: \(summary(after))")
            }
        }
        print("outcome: mounted (fsck: \(summary(before))\(reached); \(files.count) files; unmount: \((try? unmounted.get()) != nil ? "ok" : "failed"); fsck after: \(summary(after)))")
        return 0
    }

    private static func announce(_ step: String) {
        print("step: \(step)")
        fflush(stdout)
    }

    private static func contradiction(_ message: String) -> Int32 {
        print("contradiction: \(message)")
        fflush(stdout)
        return contradictionStatus
    }

    private static func summary(_ result: Result<[String], Error>) -> String {
        switch result {
        case .success(let problems): return problems.isEmpty ? "clean" : "\(problems.count) problems, first: \(problems[0])"
        case .failure(let error): return "refused: \(error)"
        }
    }

    /// Every directory entry, once, breadth first; reads, link targets and xattrs of what it
    /// finds. Bounded, so that a crafted cycle cannot keep it going.
    private static func walk(_ fs: FileSystem) -> [(parent: InodeNumber, name: [UInt8], ino: InodeNumber, type: FileType)] {
        var found: [(parent: InodeNumber, name: [UInt8], ino: InodeNumber, type: FileType)] = []
        var queue: [InodeNumber] = [FileSystem.rootInode]
        var seen: Set<InodeNumber> = [FileSystem.rootInode]
        var looked: [InodeNumber: UInt64] = [:]
        while let directory = queue.popLast(), found.count < 20_000 {
            var entries: [DirectoryEntry] = []
            var cookie: UInt64 = 0
            while entries.count < 20_000 {
                var batch: [DirectoryEntry] = []
                guard (try? fs.readdir(directory, after: cookie, plus: false, { entry, _ in
                    batch.append(entry)
                    return batch.count < 64
                })) != nil, let last = batch.last else { break }
                entries += batch
                guard last.nextCookie > cookie else { break }
                cookie = last.nextCookie
            }
            for entry in entries where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
                guard let attributes = try? fs.lookup(parent: directory, name: entry.name) else { continue }
                looked[attributes.ino, default: 0] += 1
                found.append((directory, entry.name, attributes.ino, attributes.type))
                _ = try? fs.getattr(attributes.ino)
                _ = try? fs.listxattr(attributes.ino).map { try? fs.getxattr(attributes.ino, name: $0) }
                switch attributes.type {
                case .directory:
                    if seen.insert(attributes.ino).inserted { queue.append(attributes.ino) }
                case .symlink:
                    _ = try? fs.readlink(attributes.ino)
                case .regular:
                    var offset: UInt64 = 0
                    while offset < min(attributes.size, 1 << 20) {
                        guard (try? fs.read(attributes.ino, offset: offset, count: 64 << 10, { _ in })) != nil else { break }
                        offset += 64 << 10
                    }
                    _ = try? fs.seek(attributes.ino, offset: 0, to: .hole)
                    _ = try? fs.extentMap(attributes.ino, offset: 0, length: UInt64.max / 2, limit: 1000)
                default:
                    break
                }
            }
        }
        for (ino, count) in looked { fs.forget(ino, count: count) }
        return found
    }

    /// A little of everything that changes metadata, on new files and on what the image held.
    private static func workload(_ fs: FileSystem, files: [(parent: InodeNumber, name: [UInt8], ino: InodeNumber, type: FileType)]) {
        let root = FileSystem.rootInode
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        func write(_ ino: InodeNumber, _ data: [UInt8], at offset: UInt64) {
            _ = try? data.withUnsafeBytes { try fs.write(ino, offset: offset, $0) }
        }
        if let created = try? fs.create(parent: root, name: bytes("fuzz-new"), mode: 0o644, flags: 0, owner: .root) {
            write(created.ino, [UInt8](repeating: 0x42, count: 100_000), at: 0)
            try? fs.fsync(created.ino, dataOnly: false)
            try? fs.setxattr(created.ino, name: bytes("user.fuzz"), value: [1, 2, 3], flags: [])
            try? fs.rename(parent: root, name: bytes("fuzz-new"), newParent: root, newName: bytes("fuzz-renamed"), flags: [])
            fs.forget(created.ino, count: 1)
        }
        _ = try? fs.mkdir(parent: root, name: bytes("fuzz-dir"), mode: 0o755, owner: .root)
        _ = try? fs.symlink(parent: root, name: bytes("fuzz-link"), target: bytes("fuzz-renamed"), owner: .root)
        let regular = files.filter { $0.type == .regular }
        for (index, file) in regular.prefix(4).enumerated() {
            guard let attributes = try? fs.lookup(parent: file.parent, name: file.name) else { continue }
            defer { fs.forget(attributes.ino, count: 1) }
            let size = attributes.size
            switch index {
            case 0:
                write(file.ino, [7, 7, 7], at: size / 2)
                _ = try? fs.setattr(file.ino, AttributeChanges(size: size / 3))
            case 1:
                try? fs.fallocate(file.ino, offset: 0, length: 8192, mode: [.punchHole, .keepSize])
                try? fs.fallocate(file.ino, offset: 4096, length: 4096, mode: .insertRange)
            case 2:
                if let target = try? fs.create(parent: root, name: bytes("fuzz-clone"), mode: 0o644, flags: 0, owner: .root) {
                    _ = try? fs.clone(from: file.ino, sourceOffset: 0, to: target.ino, destinationOffset: 0, length: 0)
                    write(target.ino, [1], at: 0)
                    fs.forget(target.ino, count: 1)
                }
            default:
                try? fs.unlink(parent: file.parent, name: file.name)
            }
        }
        try? fs.sync()
    }
}
