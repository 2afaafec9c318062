import ExtentFSCore
import SystemPackage
import XCTest
@testable import ExtentFS

/// xfstests generic/736: a readdir of a directory whose entries are renamed while it is read
/// must end. A rename gives the entry a new cookie past every existing one, so a reader that
/// just went on to the next cookies met each renamed entry again (15,000+ entries for 5,000
/// files). A stream now stops at the end cookie it took when it started.
final class DirectoryStreamTests: XCTestCase {
    func name(_ string: String) -> [UInt8] { Array(string.utf8) }

    func testReaddirWhileRenamingEveryEntryEnds() throws {
        let volume = try TestVolume()
        let fs = volume.fs!
        let dir = try fs.mkdir(parent: FileSystem.rootInode, name: name("d"), mode: 0o755, owner: .root)
        let count = 2000
        for index in 0..<count {
            _ = try fs.mknod(parent: dir.ino, name: name("file-\(index)"), mode: ExtentFSCore.FileType.regular.rawValue | 0o644,
                             rdev: 0, owner: .root)
        }
        let end = try fs.directoryEndCookie(dir.ino)
        var seen: [String] = []
        var cookie: UInt64 = 0
        while seen.count <= 2 * count + 2 {
            var batch: [DirectoryEntry] = []
            try fs.readdir(dir.ino, after: cookie, before: end, plus: false) { entry, _ in
                guard batch.count < 64 else { return false }
                batch.append(entry)
                return true
            }
            if batch.isEmpty { break }
            for entry in batch {
                cookie = entry.nextCookie
                let entryName = String(decoding: entry.name, as: UTF8.self)
                seen.append(entryName)
                // Renamed within the same directory, as generic/736 does: a new cookie.
                if entryName != ".", entryName != ".." {
                    try fs.rename(parent: dir.ino, name: entry.name, newParent: dir.ino, newName: name("r" + entryName), flags: [])
                }
            }
        }
        XCTAssertEqual(seen.count, count + 2, "a readdir while renaming read \(seen.count) entries of \(count + 2)")
        XCTAssertEqual(Set(seen).count, seen.count, "an entry came twice")

        // A new stream (or a rewound one) sees the directory as it is now.
        var names = Set<String>()
        try fs.readdir(dir.ino, after: 0, before: try fs.directoryEndCookie(dir.ino), plus: false) { entry, _ in
            names.insert(String(decoding: entry.name, as: UTF8.self))
            return true
        }
        XCTAssertEqual(names.count, count + 2)
        XCTAssertTrue(names.contains("rfile-0") && !names.contains("file-0"))
        try volume.unmountAndCheck()
    }
}
