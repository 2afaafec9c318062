import XCTest
import SystemPackage
@testable import ExtentFS

/// A directory's next cookie is stored in every checkpoint: mount must take it, not work it out
/// from the entries left, or the cookies of entries removed before the checkpoint are given out
/// again (a readdir offset from before a remount would then name another entry), and an image
/// whose next cookie is at the limit would be taken for one with room (HostileImageTests). Seen
/// failing before mount read it: "c" got the cookie "b" had.
final class DirectoryCookieTests: XCTestCase {
    func testCookiesOfRemovedEntriesAreNotGivenOutAfterARemount() throws {
        let volume = try TestVolume()
        _ = try volume.create("a")
        _ = try volume.create("b")
        var cookies: [String: UInt64] = [:]
        func readCookies() throws {
            try volume.fs.readdir(FileSystem.rootInode, after: 0, plus: false) { entry, _ in
                cookies[String(decoding: entry.name, as: UTF8.self)] = entry.nextCookie
                return true
            }
        }
        try readCookies()
        let removed = try XCTUnwrap(cookies["b"])
        try volume.fs.unlink(parent: FileSystem.rootInode, name: Array("b".utf8))
        try volume.remount()
        _ = try volume.create("c")
        try readCookies()
        XCTAssertGreaterThan(try XCTUnwrap(cookies["c"]), removed)
        try volume.unmountAndCheck()
    }
}
