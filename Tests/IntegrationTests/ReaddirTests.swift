import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// xfstests generic/736 through the mount: readdir(3) of a directory while every entry read is
/// renamed within it must end, each name once. It did not end: a renamed entry got a cookie past
/// the reader's position and was read again.
final class ReaddirTests: XCTestCase {
    func testReaddirWhileRenamingEnds() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "64M")
        try volume.mount()
        let directory = volume.path("d")
        try makeDirectory(directory)
        let count = 3000
        for index in 0..<count {
            try closeFile(try openFile("\(directory)/file-\(index)", O_WRONLY | O_CREAT | O_EXCL))
        }

        guard let stream = opendir(directory) else { throw SyscallError(call: "opendir(\(directory))", code: errno) }
        var read = 0
        var names = Set<String>()
        while read <= 2 * count, let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            read += 1
            names.insert(name)
            if name.hasPrefix("file-") {
                XCTAssertEqual(rename("\(directory)/\(name)", "\(directory)/moved-\(name)"), 0, "rename of \(name)")
            }
        }
        closedir(stream)
        XCTAssertEqual(read, count + 2, "readdir while renaming returned \(read) entries for \(count + 2)")
        XCTAssertEqual(names.count, read, "an entry came twice")

        // rewinddir and a new stream see every entry under its new name.
        let listed = try FileManager.default.contentsOfDirectory(atPath: directory)
        XCTAssertEqual(listed.count, count)
        XCTAssertTrue(listed.allSatisfy { $0.hasPrefix("moved-file-") })
        try volume.remountChecked("after readdir while renaming")
        try volume.unmount()
    }
}
