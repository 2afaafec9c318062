import ExtentFSCore
import Foundation
import SystemPackage
import XCTest
@testable import ExtentFS

/// Format version 7: a directory read back from the metadata tree holds only its changes, and a
/// lookup reads one entry through the tree's name index (issue 9: lookup in a directory of a
/// million entries as fast per entry as in one of a hundred, and its memory bounded).
final class DirectoryIndexTests: XCTestCase {
    /// SipHash-2-4's reference vectors (key 00 01 .. 0f; messages 00 01 .. of each length).
    func testTheNameHashIsSipHash24() {
        let hash = NameHash(uuid: Array(0..<16))
        XCTAssertEqual(hash([]), 0x726f_db47_dd0e_0e31)
        XCTAssertEqual(hash([0]), 0x74f8_39c5_93dc_67fd)
        XCTAssertEqual(hash(Array(0..<15)), 0xa129_ca61_49be_45e5)
        XCTAssertNotEqual(NameHash(uuid: Array(1..<17))([0]), hash([0]), "keyed by the volume")
    }

    private func entries(_ volume: TestVolume, _ directory: InodeNumber) throws -> [(String, InodeNumber)] {
        var listed: [(String, InodeNumber)] = []
        try volume.fs.readdir(directory, after: 0, plus: false) { entry, _ in
            if entry.name != [0x2E] && entry.name != [0x2E, 0x2E] { listed.append((String(decoding: entry.name, as: UTF8.self), entry.ino)) }
            return true
        }
        return listed
    }

    /// A directory of 3,000 entries after a remount: a lookup reads a few nodes, not the
    /// directory; the directory holds nothing but what changes; creates, unlinks, renames (over
    /// a name, across directories, exchanges) and readdir see the tree and the changes merged,
    /// through checkpoints, remounts and a crash, at every block size; fsck checks the index.
    func testALargeDirectoryIsReadByNameAndHoldsOnlyItsChanges() throws {
        for blockSize in [1024, 4096, 65536] {
            let volume = try TestVolume(blockSize: blockSize, size: 256 << 20)
            let big = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("big".utf8), mode: 0o755, owner: .root).ino
            let other = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("other".utf8), mode: 0o755, owner: .root).ino
            var model: [String: InodeNumber] = [:]
            for index in 0..<3_000 { model["name-\(index)"] = try volume.create("name-\(index)", in: big) }
            try volume.fs.sync()
            try volume.fs.journal.checkpoint()
            let counter = ReadCounter()
            try volume.remount(intercepting: counter)
            let afterMount = counter.lock.withLock { counter.bytes }
            XCTAssertEqual(try volume.fs.lookup(parent: big, name: Array("name-2718".utf8)).ino, model["name-2718"])
            let lookupBytes = counter.lock.withLock { counter.bytes } - afterMount
            XCTAssertLessThanOrEqual(lookupBytes, 16 * max(blockSize, 4096), "a lookup reads a few nodes (\(lookupBytes) bytes), block size \(blockSize)")
            // In a directory already read: the leaf of the name's index item, which holds the
            // entry (format 9), and the leaf of the child's image; not the entry's leaf too. The
            // least of three lookups, so that a read by another thread cannot fail it.
            var fewestBytes = Int.max
            for name in ["name-1234", "name-555", "name-2020"] {
                let before = counter.lock.withLock { counter.bytes }
                XCTAssertEqual(try volume.fs.lookup(parent: big, name: Array(name.utf8)).ino, model[name])
                fewestBytes = min(fewestBytes, counter.lock.withLock { counter.bytes } - before)
            }
            // (With no node cache at all, every lookup reads its internal nodes again.)
            if volume.options.metadataCacheBytes > 0 {
                XCTAssertLessThanOrEqual(fewestBytes, 2 * blockSize, "a lookup reads two leaves, block size \(blockSize)")
            }
            let held = try volume.fs.metadata.withLock { () throws -> (Bool, Int, Int) in
                let directory = try volume.fs.metadata.inode(big).directory!
                return (directory.isComplete, directory.heldCount, directory.count)
            }
            XCTAssertFalse(held.0, "read without its entries")
            XCTAssertEqual(held.1, 0, "holds no entry")
            XCTAssertEqual(held.2, 3_000, "knows how many")
            XCTAssertThrowsError(try volume.fs.lookup(parent: big, name: Array("name-3000".utf8))) {
                XCTAssertEqual($0 as? Errno, .noSuchFileOrDirectory)
            }

            // Changes among the stored entries.
            for index in stride(from: 0, to: 3_000, by: 7) {
                try volume.fs.unlink(parent: big, name: Array("name-\(index)".utf8))
                model["name-\(index)"] = nil
            }
            for index in 0..<50 { model["new-\(index)"] = try volume.create("new-\(index)", in: big) }
            try volume.fs.rename(parent: big, name: Array("name-1".utf8), newParent: big, newName: Array("name-2".utf8), flags: [])
            model["name-2"] = model.removeValue(forKey: "name-1")
            try volume.fs.rename(parent: big, name: Array("name-3".utf8), newParent: other, newName: Array("moved".utf8), flags: [])
            model["name-3"] = nil
            try volume.fs.rename(parent: big, name: Array("name-4".utf8), newParent: big, newName: Array("name-5".utf8), flags: .exchange)
            (model["name-4"], model["name-5"]) = (model["name-5"], model["name-4"])
            XCTAssertThrowsError(try volume.fs.mkdir(parent: big, name: Array("name-8".utf8), mode: 0o755, owner: .root)) {
                XCTAssertEqual($0 as? Errno, .fileExists, "a stored name exists")
            }
            _ = try volume.fs.mkdir(parent: big, name: Array("name-0".utf8), mode: 0o755, owner: .root)
            model["name-0"] = try volume.fs.lookup(parent: big, name: Array("name-0".utf8)).ino

            func assertMatches(_ context: String) throws {
                let listed = try entries(volume, big)
                XCTAssertEqual(listed.count, model.count, "readdir lists every entry once, \(context)")
                XCTAssertEqual(Dictionary(listed, uniquingKeysWith: { a, _ in a }), model, "readdir, \(context)")
                for (name, ino) in model where name.hasSuffix("5") || name.hasPrefix("new") {
                    XCTAssertEqual(try volume.fs.lookup(parent: big, name: Array(name.utf8)).ino, ino, "\(name), \(context)")
                }
                XCTAssertEqual(try volume.fs.lookup(parent: other, name: Array("moved".utf8)).ino != 0, true)
            }
            try assertMatches("block size \(blockSize), changed")
            try volume.fs.sync()
            try volume.fs.journal.checkpoint()
            try assertMatches("block size \(blockSize), checkpointed")
            try volume.remount()
            try assertMatches("block size \(blockSize), remounted")

            // Logged but not checkpointed: replay rebuilds the changes over the stored entries.
            for index in stride(from: 2, to: 3_000, by: 11) where model["name-\(index)"] != nil {
                try volume.fs.unlink(parent: big, name: Array("name-\(index)".utf8))
                model["name-\(index)"] = nil
            }
            for index in 0..<20 { model["late-\(index)"] = try volume.create("late-\(index)", in: big) }
            try volume.fs.sync()
            let copy = volume.directory + "/crash.img"
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: volume.image, toPath: copy)
            try volume.fs.unmount()
            try FileManager.default.removeItem(atPath: volume.image)
            try FileManager.default.moveItem(atPath: copy, toPath: volume.image)
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            try assertMatches("block size \(blockSize), after a crash")
            try volume.unmountAndCheck()
        }
    }

    /// The root (never let go) made complete by 4,000 creates in this mount: once they are in a
    /// durable checkpoint, the table over its budget lets go of the entries the root holds, and
    /// every name still resolves (from the tree), through more changes and a remount.
    func testACleanDirectoryTheTableKeepsLetsGoOfItsEntries() throws {
        let volume = try TestVolume(size: 128 << 20)
        volume.options.metadataCacheBytes = 1 << 20
        try volume.remount()
        var files: [String: InodeNumber] = [:]
        for index in 0..<4_000 { files["f\(index)"] = try volume.create("f\(index)") }
        func rootHeld() throws -> Int {
            try volume.fs.metadata.withLock { try volume.fs.metadata.inode(FileSystem.rootInode).directory!.heldCount }
        }
        XCTAssertEqual(try rootHeld(), 4_000, "changed since the checkpoint: held")
        try volume.fs.sync()
        try volume.fs.journal.checkpoint()
        try volume.fs.journal.checkpoint()
        // Reading inodes back brings the table over its budget and runs its sweep.
        for (name, ino) in files where name.hasSuffix("3") {
            XCTAssertEqual(try volume.fs.lookup(parent: FileSystem.rootInode, name: Array(name.utf8)).ino, ino)
            volume.fs.forget(ino, count: 1)
        }
        XCTAssertEqual(try rootHeld(), 0, "clean: the tree holds them")
        try volume.fs.unlink(parent: FileSystem.rootInode, name: Array("f13".utf8))
        files["f13"] = nil
        files["g"] = try volume.create("g")
        for (name, ino) in files where name.hasSuffix("7") || name == "g" {
            XCTAssertEqual(try volume.fs.lookup(parent: FileSystem.rootInode, name: Array(name.utf8)).ino, ino)
        }
        XCTAssertThrowsError(try volume.fs.lookup(parent: FileSystem.rootInode, name: Array("f13".utf8)))
        XCTAssertEqual(try entries(volume, FileSystem.rootInode).count, files.count)
        try volume.remount()
        XCTAssertEqual(try entries(volume, FileSystem.rootInode).count, files.count)
        try volume.unmountAndCheck()
    }

    /// A volume with directory "d" of `files` files f0, f1, ..., checkpointed and unmounted, for
    /// a test to craft its tree.
    private func unmountedDirectory(files: Int) throws -> (TestVolume, InodeNumber) {
        let volume = try TestVolume()
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
        for index in 0..<files { _ = try volume.create("f\(index)", in: directory) }
        try volume.fs.sync()
        try volume.fs.journal.checkpoint()
        try volume.fs.unmount()
        volume.fs = nil
        return (volume, directory)
    }

    /// A directory image (version 7) whose last 16 bytes, its entry totals, say `count` and `bytes`.
    private func withTotals(_ image: [UInt8], count: UInt64, bytes: UInt64) -> [UInt8] {
        var image = image
        withUnsafeBytes(of: count.littleEndian) { image.replaceSubrange(image.count - 16..<image.count - 8, with: $0) }
        withUnsafeBytes(of: bytes.littleEndian) { image.replaceSubrange(image.count - 8..<image.count, with: $0) }
        return image
    }

    /// A directory image's entry totals from a hostile image: values whose products overflow,
    /// and a byte count past what memory can count, are refused, never trapped on.
    func testHostileEntryTotalsAreRefused() throws {
        let volume = try TestVolume()
        let superblock = volume.fs.metadata.withLock { volume.fs.metadata.superblock }
        var image = InodeImage(Inode(ino: 5, mode: 0o040755, uid: 0, gid: 0, time: .now, cache: nil))
        image.directory = Directory(partialWithNextCookie: Directory.maxCookie - 2, count: 1, encodedEntryBytes: 20)
        var writer = ByteWriter()
        CheckpointCodec.encode(image, into: &writer, layout: .version7)
        for (total, bytes) in [(UInt64(1) << 61, UInt64.max), (UInt64(1) << 61, (UInt64(1) << 61) &* 20),
                               (UInt64(1), UInt64.max), (UInt64(1) << 60, UInt64(Int.max) + 1)] {
            var reader = ByteReader(withTotals(writer.bytes, count: total, bytes: bytes))
            XCTAssertThrowsError(try CheckpointCodec.decodeInode(&reader, superblock: superblock, layout: .version7, cache: nil),
                                 "\(total) entries of \(bytes) bytes")
        }
        try volume.unmountAndCheck()
    }

    /// Totals that understate the tree's entries (damage that only fsck reads far enough to
    /// see): removing every entry stops the count at zero instead of making a negative one that
    /// the next log record could not encode (it trapped), and leaves a clean image.
    func testTotalsThatUnderstateTheEntriesDoNotGoNegative() throws {
        let (volume, directory) = try unmountedDirectory(files: 3)
        var crafting = try ImageCrafting(image: volume.image)
        var items = try crafting.items()
        let imageKey = MetadataTree.imageKey(directory, piece: 0)
        let slot = try XCTUnwrap(items.firstIndex { $0.key == imageKey })
        XCTAssertNil(items.first { $0.key == MetadataTree.imageKey(directory, piece: 1) }, "the image is one piece")
        // One entry of 21 bytes where there are three.
        items[slot].value = withTotals(items[slot].value, count: 1, bytes: 21)
        try crafting.writeItems(items)
        volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
        for index in 0..<3 { try volume.fs.unlink(parent: directory, name: Array("f\(index)".utf8)) }
        try volume.fs.sync()
        XCTAssertNoThrow(try volume.fs.rmdir(parent: FileSystem.rootInode, name: Array("d".utf8)))
        try volume.unmountAndCheck()
    }

    /// The index value's one rule: every record with its name when all fit, every record short
    /// (no name) when not, nothing when even short ones do not fit; records in cookie order.
    func testAnIndexValueHoldsNamesWhenTheyFit() throws {
        let maxValueSize = BTree.maxValueSize(nodeSize: 1024)
        func record(_ cookie: UInt64, _ name: String) -> MetadataTree.IndexRecord {
            MetadataTree.IndexRecord(cookie: cookie, child: cookie + 100, type: .regular, name: Array(name.utf8))
        }
        let short = try XCTUnwrap(MetadataTree.encodeIndex([record(9, "b"), record(4, "a")], maxValueSize: maxValueSize))
        XCTAssertEqual(short.count, 2 * (MetadataTree.IndexRecord.fixedBytes + 1))
        XCTAssertEqual(short[0], 4, "ascending cookies")
        XCTAssertEqual(short[17], 1, "with its name")
        let long = String(repeating: "n", count: 255)
        let cut = try XCTUnwrap(MetadataTree.encodeIndex([record(4, "a"), record(9, long)], maxValueSize: maxValueSize))
        XCTAssertEqual(cut.count, 2 * MetadataTree.IndexRecord.fixedBytes, "a name that does not fit: every record short")
        XCTAssertEqual([cut[17], cut[35]], [0, 0])
        let many = (1...UInt64(maxValueSize / MetadataTree.IndexRecord.fixedBytes + 1)).map { record($0, long) }
        XCTAssertNil(MetadataTree.encodeIndex(many, maxValueSize: maxValueSize))
        XCTAssertNotNil(MetadataTree.encodeIndex(Array(many.dropLast()), maxValueSize: maxValueSize))
    }

    /// Names too long for a record of a small node are listed short: a lookup then reads the
    /// entry too, and renames over them, unlinks and a remount keep index and entries one.
    func testLongNamesOfSmallNodesAreLookedUpThroughTheirEntries() throws {
        let volume = try TestVolume(blockSize: 1024, size: 64 << 20)
        let directory = try volume.fs.mkdir(parent: FileSystem.rootInode, name: Array("d".utf8), mode: 0o755, owner: .root).ino
        func name(_ index: Int) -> String { String(repeating: "x", count: 240) + "-\(index)" }
        var model: [String: InodeNumber] = [:]
        for index in 0..<40 { model[name(index)] = try volume.create(name(index), in: directory) }
        for round in 0..<2 {
            try volume.fs.sync()
            try volume.fs.journal.checkpoint()
            try volume.remount()
            for (entryName, ino) in model {
                XCTAssertEqual(try volume.lookup(entryName, in: directory).ino, ino, "round \(round)")
            }
            XCTAssertEqual(Dictionary(try entries(volume, directory), uniquingKeysWith: { a, _ in a }), model, "round \(round)")
            // Over a name (the index's child changes at that cookie), away, and gone.
            try volume.fs.rename(parent: directory, name: Array(name(round).utf8), newParent: directory,
                                 newName: Array(name(round + 10).utf8), flags: [])
            model[name(round + 10)] = model.removeValue(forKey: name(round))
            try volume.fs.unlink(parent: directory, name: Array(name(round + 20).utf8))
            model[name(round + 20)] = nil
        }
        try volume.fs.sync()
        try volume.fs.journal.checkpoint()
        try volume.remount()
        for (entryName, ino) in model { XCTAssertEqual(try volume.lookup(entryName, in: directory).ino, ino) }
        try volume.unmountAndCheck()
    }

    /// Damage to the name index: a short record (no name) naming a cookie with no entry, an
    /// entry listed under another name's hash, a full record naming a cookie with no entry, a
    /// record whose child is not the entry's. fsck refuses the image; a lookup that meets the
    /// first two is EIO, never a wrong inode. (A lookup trusts a full record, as btrfs trusts
    /// its DIR_ITEM: reading the entry too is the second read the index saves.)
    func testADamagedNameIndexIsEIOAndFsckRefusesIt() throws {
        for damage in ["a short record with no entry", "another name's hash", "a full record with no entry", "another child"] {
            let (volume, directory) = try unmountedDirectory(files: 20)
            var crafting = try ImageCrafting(image: volume.image)
            let hash = NameHash(uuid: crafting.superblock.uuid)
            var items = try crafting.items()
            let key = MetadataTree.nameIndexKey(directory, hash: hash(Array("f7".utf8)))
            let index = try XCTUnwrap(items.firstIndex { $0.key == key })
            let maxValueSize = BTree.maxValueSize(nodeSize: Int(crafting.superblock.blockSize))
            let f7 = try recordOfF7(items[index].value)
            func value(_ record: MetadataTree.IndexRecord) throws -> [UInt8] {
                var bytes = try XCTUnwrap(MetadataTree.encodeIndex([record], maxValueSize: maxValueSize))
                if record.name.isEmpty { bytes[17] = 0 }
                return bytes
            }
            switch damage {
            case "a short record with no entry":
                var record = f7
                record.cookie = 1 << 40
                record.name = []
                items[index].value = try value(record)
            case "a full record with no entry":
                var record = f7
                record.cookie = 1 << 40
                items[index].value = try value(record)
            case "another child":
                var record = f7
                record.child = directory
                items[index].value = try value(record)
            default:
                // f7's record listed under f8's hash, and f8's hash's own item gone.
                let moved = items[index].value
                items.remove(at: index)
                let target = MetadataTree.nameIndexKey(directory, hash: hash(Array("f8".utf8)))
                let slot = try XCTUnwrap(items.firstIndex { $0.key == target })
                items[slot].value = moved
            }
            try crafting.writeItems(items)
            XCTAssertThrowsError(try Volume.check(image: volume.image), "fsck accepted \(damage)") {
                XCTAssertTrue("\($0)".contains("name index"), "\($0)")
            }
            volume.fs = try FileSystem.mount(image: volume.image, options: volume.options)
            switch damage {
            case "a short record with no entry", "another name's hash":
                XCTAssertThrowsError(try volume.fs.lookup(parent: directory, name: Array((damage == "another name's hash" ? "f8" : "f7").utf8))) {
                    XCTAssertEqual($0 as? Errno, .ioError, damage)
                }
            default:
                // Trusted by a lookup; the readdir of entries is what the entries say.
                XCTAssertEqual(try entries(volume, directory).filter { $0.0 == "f7" }.count, 1, damage)
            }
            try volume.fs.unmount()
            volume.fs = nil
        }
    }

    /// f7's record, from its index value (one record: no other name of the test shares its hash).
    private func recordOfF7(_ value: [UInt8]) throws -> MetadataTree.IndexRecord {
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(value[at + $1]) << ($1 * 8) } }
        XCTAssertEqual(value.count, MetadataTree.IndexRecord.fixedBytes + 2)
        return MetadataTree.IndexRecord(cookie: u64(0), child: u64(8), type: try XCTUnwrap(FileType(mode: UInt32(value[16]) << 12)),
                                        name: Array(value[18...]))
    }
}
