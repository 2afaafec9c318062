#if canImport(Glibc)
import Glibc
#endif

/// `path` made absolute with symlinks resolved where it exists; else lexically absolute.
func absolutePath(_ path: String) -> String {
    if let resolved = realpath(path, nil) {
        defer { free(resolved) }
        return String(cString: resolved)
    }
    return lexicallyAbsolute(path)
}

/// Resolves everything but the last component, so a mountpoint whose daemon has died (where
/// stat fails with ENOTCONN) still gets the canonical name the kernel lists it under.
func absolutePathNotFollowingLast(_ path: String) -> String {
    let absolute = lexicallyAbsolute(path)
    guard absolute != "/", let slash = absolute.lastIndex(of: "/") else { return absolute }
    let parent = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
    let name = absolute[absolute.index(after: slash)...]
    let resolvedParent = absolutePath(parent)
    return resolvedParent == "/" ? "/\(name)" : "\(resolvedParent)/\(name)"
}

/// Joins with the working directory and removes ".", ".." and repeated slashes.
func lexicallyAbsolute(_ path: String) -> String {
    var full = path
    if !path.hasPrefix("/"), let cwd = getcwd(nil, 0) {
        full = String(cString: cwd) + "/" + path
        free(cwd)
    }
    var parts: [Substring] = []
    for part in full.split(separator: "/") {
        switch part {
        case ".": continue
        case "..": _ = parts.popLast()
        default: parts.append(part)
        }
    }
    return "/" + parts.joined(separator: "/")
}

/// The running executable, for re-executing ourselves.
func executablePath() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return CommandLine.arguments[0] }
    buffer[count] = 0
    return String(cString: buffer)
}
