import ArgumentParser
import ExtentFS
import ExtentFSFuse
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A CLI failure whose text is already the whole message.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One line for the user, whatever threw.
func errorMessage(_ error: Error) -> String {
    switch error {
    case let error as ExtentFSError: return error.description
    case let error as FuseSessionError: return error.description
    case let error as CommandFailure: return error.description
    case let errno as Errno: return errno.description
    default: return String(describing: error)
    }
}

func printError(_ subcommand: String, _ text: String) {
    let line = "extentfs: \(subcommand): \(text)\n"
    _ = try? FileDescriptor.standardError.writeAll(line.utf8)
}

/// Prints the one-line error and returns the exit code to throw.
func failure(_ subcommand: String, _ error: Error) -> ExitCode {
    printError(subcommand, errorMessage(error))
    return .failure
}

/// Runs a subcommand's work, turning any error into one line on stderr and exit status 1.
func reportingErrors(_ subcommand: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw failure(subcommand, error)
    }
}

/// A bare errno says nothing about which file; name the one the command was working on.
func naming<R>(_ path: String, _ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let errno as Errno {
        throw CommandFailure("\(path): \(errno)")
    }
}
