import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// fallocate(2) mode flags, as in <linux/falloc.h>.
enum FallocateFlags {
    static let keepSize: Int32 = 0x01
    static let punchHole: Int32 = 0x02
    static let zeroRange: Int32 = 0x10
}

extension SpaceFile {
    func fallocate(mode: Int32, offset: UInt64, length: UInt64) throws {
        // Above Int64.max they would be negative offsets, which fallocate(2) calls EINVAL.
        guard offset <= UInt64(Int64.max), length <= UInt64(Int64.max) else {
            throw FileError(path, .invalidArgument)
        }
        while fallocateFunction(descriptor.rawValue, mode, off_t(offset), off_t(length)) != 0 {
            guard errno == EINTR else { throw FileError(path, Errno(rawValue: errno)) }
        }
    }
}

/// glibc declares fallocate() only with _GNU_SOURCE, which Swift's Glibc module is built
/// without; the function is in libc all the same. A nil handle is RTLD_DEFAULT.
private let fallocateFunction: @convention(c) (Int32, Int32, off_t, off_t) -> Int32 = {
    guard let symbol = dlsym(nil, "fallocate") else { fatalError("libc has no fallocate") }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32, off_t, off_t) -> Int32).self)
}()
