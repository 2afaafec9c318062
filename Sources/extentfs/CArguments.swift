#if canImport(Glibc)
import Glibc
#endif

/// `arguments` as the NULL-terminated C string array posix_spawn takes, valid during `body`.
func withCArguments<R>(_ arguments: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> R) rethrows -> R {
    var argv = arguments.map { argument -> UnsafeMutablePointer<CChar>? in strdup(argument) }
    argv.append(nil)
    defer { argv.forEach { free($0) } }
    return try body(argv)
}
