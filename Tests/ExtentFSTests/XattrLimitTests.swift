import ExtentFSCore
import XCTest
import SystemPackage
@testable import ExtentFS

/// Extended attributes: the kernel's errors for names and values, and the per-inode bound
/// (ExtentFSCore/Inode/ExtendedAttributes.swift) that keeps one user from making an inode as large as they
/// like. Before the bound, one file took 1,500 values of 64 KiB.
final class XattrLimitTests: XCTestCase {
    private func name(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testNamesAndValuesGetTheKernelsErrors() throws {
        let volume = try TestVolume()
        let file = try volume.create("file")
        let cases: [([UInt8], Int, Errno)] = [
            ([], 1, .outOfRange),                                               // empty name
            (name("user." + String(repeating: "n", count: 251)), 1, .outOfRange), // 256 bytes
            (name("nonamespace"), 1, .notSupported),
            (name("system.other"), 1, .notSupported),                           // of system.*, only POSIX ACLs
            (name("system.posix_acl_access"), 1, .invalidArgument),             // not an ACL (PosixACLTests)
            (name("user."), 1, .invalidArgument),                               // a bare prefix
            (name("user.a") + [0] + name("b"), 1, .invalidArgument),
            (name("user.big"), ExtendedAttributes.maxValueBytes + 1, .argListTooLong),
        ]
        for (name, size, expected) in cases {
            XCTAssertEqual(errno { try volume.fs.setxattr(file, name: name, value: [UInt8](repeating: 1, count: size), flags: []) },
                           expected, "setxattr \(String(decoding: name, as: UTF8.self).debugDescription) of \(size) bytes")
        }
        let longest = name("user." + String(repeating: "n", count: 250))
        try volume.fs.setxattr(file, name: longest, value: [UInt8](repeating: 2, count: ExtendedAttributes.maxValueBytes), flags: [])
        XCTAssertEqual(try volume.fs.getxattr(file, name: longest).count, ExtendedAttributes.maxValueBytes)
        XCTAssertEqual(errno { _ = try volume.fs.getxattr(file, name: self.name("system.posix_acl_default")) }, .noData)
        XCTAssertEqual(errno { _ = try volume.fs.getxattr(file, name: self.name("system.other")) }, .notSupported)
        XCTAssertEqual(errno { try volume.fs.removexattr(file, name: self.name("user.")) }, .invalidArgument)
        try volume.unmountAndCheck()
    }

    func testAnInodesXattrsStayWithinTheirBound() throws {
        let volume = try TestVolume()
        let file = try volume.create("file")
        let largest = [UInt8](repeating: 3, count: ExtendedAttributes.maxValueBytes)
        try volume.fs.setxattr(file, name: name("user.a"), value: largest, flags: [])
        // Names and values together: 128 KiB. The second largest value fits only with a name
        // short enough; one byte more is ENOSPC, as ext4 answers when an inode's xattr space is full.
        let room = ExtendedAttributes.maxTotalBytes - ("user.a".utf8.count + largest.count) - "user.b".utf8.count
        XCTAssertEqual(errno { try volume.fs.setxattr(file, name: self.name("user.b"), value: [UInt8](repeating: 4, count: room + 1), flags: []) },
                       .noSpace)
        try volume.fs.setxattr(file, name: name("user.b"), value: [UInt8](repeating: 4, count: room), flags: [])
        XCTAssertEqual(errno { try volume.fs.setxattr(file, name: self.name("user.c"), value: [], flags: []) }, .noSpace)
        // Replacing a value with a smaller one, and removing one, make room again.
        try volume.fs.setxattr(file, name: name("user.a"), value: [1], flags: .replace)
        try volume.fs.setxattr(file, name: name("user.c"), value: [], flags: [])

        // The names, each with its NUL, fit listxattr's 64 KiB: 256 names of 255 bytes do.
        let other = try volume.create("other")
        func longName(_ index: Int) -> [UInt8] { name("user.\(String(format: "%05d", index))" + String(repeating: "x", count: 245)) }
        for index in 0..<256 { try volume.fs.setxattr(other, name: longName(index), value: [], flags: []) }
        XCTAssertEqual(errno { try volume.fs.setxattr(other, name: longName(256), value: [], flags: []) }, .noSpace)
        let listed = try volume.fs.listxattr(other)
        XCTAssertEqual(listed.reduce(0) { $0 + $1.count + 1 }, ExtendedAttributes.maxListBytes)
        try volume.remount()
        XCTAssertEqual(try volume.fs.listxattr(other).count, 256)
        XCTAssertEqual(try volume.fs.getxattr(file, name: name("user.b")).count, room)
        try volume.unmountAndCheck()
    }

    /// The kernel checks getxattr and setxattr of trusted.* itself but passes listxattr to the
    /// daemon unfiltered; ext4 and XFS list trusted.* names only to CAP_SYS_ADMIN.
    func testTrustedNamesCanBeLeftOutOfAListing() throws {
        let volume = try TestVolume()
        let file = try volume.create("file")
        for name in ["user.a", "trusted.overlay.opaque", "security.selinux"] {
            try volume.fs.setxattr(file, name: self.name(name), value: [1], flags: [])
        }
        XCTAssertEqual(try volume.fs.listxattr(file).map { String(decoding: $0, as: UTF8.self) },
                       ["security.selinux", "trusted.overlay.opaque", "user.a"])
        XCTAssertEqual(try volume.fs.listxattr(file, includingTrusted: false).map { String(decoding: $0, as: UTF8.self) },
                       ["security.selinux", "user.a"])
        try volume.unmountAndCheck()
    }
}
