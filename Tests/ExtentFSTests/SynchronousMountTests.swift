import SystemPackage
import XCTest
@testable import ExtentFS

/// `-o dirsync` and `-o sync`: the kernel does nothing for them on a FUSE mount beyond an fsync
/// after each write under `sync`, so they were flags without effect. Now a change to a directory
/// (dirsync, sync) and a change of attributes (sync) is in the log when the call returns: a
/// crash right after it keeps it. A crash here is a copy of the image taken while mounted.
final class SynchronousMountTests: XCTestCase {
    func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testDirsyncAndSyncCommitBeforeReturning() throws {
        for (label, dirsync, sync) in [("default", false, false), ("dirsync", true, false), ("sync", false, true)] {
            let volume = try TestVolume()
            try volume.fs.unmount()
            volume.options.synchronousDirectories = dirsync
            volume.options.synchronousAttributes = sync
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            let fs = volume.fs!
            let root = FileSystem.rootInode
            let dir = try fs.mkdir(parent: root, name: name("dir"), mode: 0o755, owner: .root)
            let file = try fs.create(parent: dir.ino, name: name("file"), mode: 0o644, flags: 0, owner: .root)
            fs.release(file.ino)
            _ = try fs.symlink(parent: root, name: name("link"), target: name("dir/file"), owner: .root)
            try fs.rename(parent: dir.ino, name: name("file"), newParent: root, newName: name("moved"), flags: [])
            _ = try fs.setattr(file.ino, AttributeChanges(mode: 0o600))

            let copy = volume.directory + "/crash.img"
            try copyImage(volume.image, to: copy)
            defer { unlink(copy) }
            XCTAssertEqual(try Volume.check(image: copy), [], label)
            var options = MountOptions()
            options.readOnly = true
            let crashed = try FileSystem.mount(image: copy, options: options)
            let moved = try? crashed.lookup(parent: root, name: name("moved"))
            let link = try? crashed.lookup(parent: root, name: name("link"))
            if dirsync || sync {
                XCTAssertNotNil(moved, "\(label): the renamed file after a crash")
                XCTAssertNotNil(link, "\(label): the symlink after a crash")
                XCTAssertNotNil(try? crashed.lookup(parent: root, name: name("dir")), "\(label): the directory after a crash")
            } else {
                XCTAssertNil(link, "\(label): nothing forced a commit, yet the symlink survived")
            }
            if sync {
                XCTAssertEqual(moved.map { $0.mode & 0o7777 }, 0o600, "\(label): the chmod after a crash")
            } else if dirsync {
                XCTAssertEqual(moved.map { $0.mode & 0o7777 }, 0o644, "\(label): dirsync commits names, not attributes")
            }
            try crashed.unmount()
            try volume.unmountAndCheck()
        }
    }

    private func copyImage(_ source: String, to target: String) throws {
        let input = try FileDescriptor.open(source, .readOnly)
        defer { try? input.close() }
        let output = try FileDescriptor.open(target, .writeOnly, options: [.create, .truncate], permissions: .ownerReadWrite)
        defer { try? output.close() }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try input.read(into: $0) }
            if count == 0 { return }
            _ = try buffer.withUnsafeBytes { try output.writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }
}
