#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemPackage

/// A replay file: everything needed to run a failing sequence again (`extentfs exercise
/// --replay FILE`). JSON, one operation per line, so that a long one can be read and cut by hand.
public struct ReplayFile: Codable, Sendable {
    public var version = 1
    public var seed: UInt64
    public var blockSize: Int
    public var files: Int
    public var cacheBytes: Int
    /// "in-process" or "mount".
    public var mode: String
    /// Threads that raced the operations with reads (in-process); absent means none.
    public var backgroundReaders: Int?
    /// What the sequence failed with when it was written.
    public var failure: ExerciseFailure?
    public var operations: [ExerciseOperation]

    public init(seed: UInt64, blockSize: Int, files: Int, cacheBytes: Int, mode: String, failure: ExerciseFailure?, operations: [ExerciseOperation]) {
        self.seed = seed
        self.blockSize = blockSize
        self.files = files
        self.cacheBytes = cacheBytes
        self.mode = mode
        self.failure = failure
        self.operations = operations
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let header = Header(version: version, seed: seed, blockSize: blockSize, files: files, cacheBytes: cacheBytes,
                            mode: mode, backgroundReaders: backgroundReaders, failure: failure)
        // The header's object, reopened to take the operations, one per line.
        let text = String(decoding: try encoder.encode(header), as: UTF8.self).dropLast()
        let lines = try operations.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try writeFile(path, text + ",\"operations\":[\n" + lines.joined(separator: ",\n") + "\n]}\n")
    }

    /// Everything but the operations.
    private struct Header: Codable {
        var version: Int
        var seed: UInt64
        var blockSize: Int
        var files: Int
        var cacheBytes: Int
        var mode: String
        var backgroundReaders: Int?
        var failure: ExerciseFailure?
    }

    public static func read(from path: String) throws -> ReplayFile {
        let bytes = try readFile(path)
        do {
            return try JSONDecoder().decode(ReplayFile.self, from: Data(bytes))
        } catch {
            throw ExerciseError("\(path) is not a replay file: \(error)")
        }
    }
}

/// A one-line error for the user.
public struct ExerciseError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

func writeFile(_ path: String, _ text: String) throws {
    do {
        let descriptor = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate],
                                                 permissions: [.ownerReadWrite, .groupRead, .otherRead])
        defer { try? descriptor.close() }
        try descriptor.writeAll(text.utf8)
    } catch let errno as Errno {
        throw ExerciseError("cannot write \(path): \(errno)")
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    do {
        let descriptor = try FileDescriptor.open(path, .readOnly)
        defer { try? descriptor.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try descriptor.read(into: $0) }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    } catch let errno as Errno {
        throw ExerciseError("cannot read \(path): \(errno)")
    }
}
