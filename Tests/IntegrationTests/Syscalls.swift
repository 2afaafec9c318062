import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// A failed system call, named with its arguments.
struct SyscallError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    var description: String { "\(call) failed: \(errnoName(code))" }
}

func errnoName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBADF: "EBADF", EACCES: "EACCES",
        EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
        EINVAL: "EINVAL", EFBIG: "EFBIG", ENOSPC: "ENOSPC", ERANGE: "ERANGE",
        ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS", ENOTEMPTY: "ENOTEMPTY", ENODATA: "ENODATA",
        EOPNOTSUPP: "EOPNOTSUPP", ENXIO: "ENXIO", ENOTCONN: "ENOTCONN", EOVERFLOW: "EOVERFLOW",
    ]
    return "\(names[code] ?? "errno \(code)") (\(String(cString: strerror(code))))"
}

/// Returns `result`, or throws the current errno when it is negative.
@discardableResult
func sys<T: BinaryInteger>(_ call: @autoclosure () -> String, _ result: T) throws -> T {
    if result < 0 {
        let code = errno
        throw SyscallError(call: call(), code: code)
    }
    return result
}

/// Asserts that a call fails with exactly `expected`.
func XCTAssertErrno<T: BinaryInteger>(
    _ expected: Int32, _ what: @autoclosure () -> String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () -> T
) {
    let result = body()
    let code = errno
    if result >= 0 {
        XCTFail("\(what()): succeeded (\(result)), expected \(errnoName(expected))", file: file, line: line)
    } else if code != expected {
        XCTFail("\(what()): failed with \(errnoName(code)), expected \(errnoName(expected))", file: file, line: line)
    }
}

/// Linux constants and calls that the Glibc module does not export (they need _GNU_SOURCE or
/// headers it does not include). None of them is variadic, so they are looked up at run time.
enum Linux {
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4
    static let renameNoReplace: UInt32 = 1
    static let renameExchange: UInt32 = 2
    static let xattrCreate: Int32 = 1
    static let xattrReplace: Int32 = 2
    static let utimeOmit: Int = (1 << 30) - 2

    typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    typealias SetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias GetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    typealias ListXattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias RemoveXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    typealias SyncFS = @convention(c) (Int32) -> Int32

    static let renameat2: Renameat2 = symbol("renameat2")
    static let lsetxattr: SetXattr = symbol("lsetxattr")
    static let lgetxattr: GetXattr = symbol("lgetxattr")
    static let llistxattr: ListXattr = symbol("llistxattr")
    static let lremovexattr: RemoveXattr = symbol("lremovexattr")
    static let syncfs: SyncFS = symbol("syncfs")

    private static func symbol<T>(_ name: String) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else {
            fatalError("the C library has no \(name)")
        }
        return unsafeBitCast(address, to: T.self)
    }
}

// MARK: - Convenience wrappers that throw SyscallError

func openFile(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
    try sys("open(\(path))", open(path, flags | O_CLOEXEC, mode))
}

func closeFile(_ fd: Int32) throws {
    try sys("close(\(fd))", close(fd))
}

func fileStatus(_ path: String) throws -> stat {
    var st = stat()
    try sys("lstat(\(path))", lstat(path, &st))
    return st
}

func fileSystemStatus(_ path: String) throws -> statvfs {
    var st = statvfs()
    try sys("statvfs(\(path))", statvfs(path, &st))
    return st
}

/// Writes all of `bytes` at `offset`, looping over short writes.
func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int = 0, path: String = "") throws {
    var done = 0
    while done < bytes.count {
        let n = try bytes.withUnsafeBytes { buffer in
            try sys("pwrite(\(path), offset \(offset + done))",
                    pwrite(fd, buffer.baseAddress! + done, bytes.count - done, off_t(offset + done)))
        }
        if n == 0 { throw SyscallError(call: "pwrite(\(path)) wrote nothing", code: EIO) }
        done += n
    }
}

/// Reads up to `count` bytes at `offset` (fewer only at end of file).
func readRange(_ fd: Int32, offset: Int, count: Int, path: String = "") throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
        let n = try bytes.withUnsafeMutableBytes { buffer in
            try sys("pread(\(path), offset \(offset + done))",
                    pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done)))
        }
        if n == 0 { break }
        done += n
    }
    return Array(bytes[0..<done])
}

func createFile(_ path: String, contents: [UInt8], mode: mode_t = 0o644) throws {
    let fd = try openFile(path, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
    defer { close(fd) }
    try writeAll(fd, contents, path: path)
    try sys("fchmod(\(path))", fchmod(fd, mode))
}

func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = try openFile(path, O_RDONLY)
    defer { close(fd) }
    var st = stat()
    try sys("fstat(\(path))", fstat(fd, &st))
    // One byte past the size, so a file that reads longer than it claims shows up.
    return try readRange(fd, offset: 0, count: Int(st.st_size) + 1, path: path)
}

func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
    try sys("mkdir(\(path))", mkdir(path, mode))
    try sys("chmod(\(path))", chmod(path, mode))
}

func readSymlink(_ path: String) throws -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = try sys("readlink(\(path))", readlink(path, &buffer, buffer.count - 1))
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func setXattr(_ path: String, _ name: String, _ value: [UInt8], flags: Int32 = 0) throws {
    _ = try value.withUnsafeBytes { buffer in
        try sys("setxattr(\(path), \(name))", Linux.lsetxattr(path, name, buffer.baseAddress, value.count, flags))
    }
}

func getXattr(_ path: String, _ name: String) throws -> [UInt8] {
    let size = try sys("getxattr(\(path), \(name), size)", Linux.lgetxattr(path, name, nil, 0))
    var value = [UInt8](repeating: 0, count: max(size, 1))
    let n = try value.withUnsafeMutableBytes { buffer in
        try sys("getxattr(\(path), \(name))", Linux.lgetxattr(path, name, buffer.baseAddress, buffer.count))
    }
    return Array(value[0..<n])
}

func listXattrs(_ path: String) throws -> [String] {
    let size = try sys("listxattr(\(path), size)", Linux.llistxattr(path, nil, 0))
    if size == 0 { return [] }
    var buffer = [CChar](repeating: 0, count: size)
    let n = try sys("listxattr(\(path))", Linux.llistxattr(path, &buffer, buffer.count))
    return buffer[0..<n].split(separator: 0).map { name in
        String(decoding: name.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }.sorted()
}

func removeXattr(_ path: String, _ name: String) throws {
    try sys("removexattr(\(path), \(name))", Linux.lremovexattr(path, name))
}

func syncFileSystem(containing path: String) throws {
    let fd = try openFile(path, O_RDONLY)
    defer { close(fd) }
    try sys("syncfs(\(path))", Linux.syncfs(fd))
}

extension timespec {
    var nanoseconds: Int64 { Int64(tv_sec) * 1_000_000_000 + Int64(tv_nsec) }
}

func realtimeNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.nanoseconds
}
