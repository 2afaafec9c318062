import Foundation
@testable import ExtentFS

/// What the write or flush that fault injection failed was, which decides what the engine owes
/// (FaultInjection): a failed flush or metadata write shuts the volume down, a failed data write
/// of a file is reported by that file's next fsync.
///
/// A data write is a piece of a file's page cache, so its bytes are exactly what a version of
/// that file holds at a file offset that sits where the disk offset does within a block (blocks
/// are mapped whole). That is checked against the model's versions first, and not only by
/// looking for data words: a page that holds nothing of the file but the last bytes of a write
/// ends with a word cut short, without the tag that marks it, and is data all the same (at block
/// size 65536 a page of its own, written as a vector of its own). Bytes that no file holds are
/// told apart by data words, as before: words of exactly one file that shares none make it that
/// file's data; no data word and not all zeros make it metadata (log records, checkpoints and
/// superblocks hold no data word); anything else (zeros, shared data) only the image checks judge.
enum FaultTarget: CustomStringConvertible {
    case metadata(String)
    case data(file: Int, path: String)
    case unclassified(String)

    var description: String {
        switch self {
        case .metadata(let what): return what
        case .data(_, let path): return "a data write of \(path)"
        case .unclassified(let what): return what
        }
    }

    static func of(_ event: CrashRecorder.Event, model: CrashModel) -> FaultTarget {
        guard case .failed(_, let write) = event, let write else { return .metadata("a flush") }
        let bytes = write.bytes
        if bytes.allSatisfy({ $0 == 0 }) { return .unclassified("a write of zeros (data or metadata)") }
        let holders = filesHolding(bytes, diskOffset: write.offset, model: model)
        if holders.count == 1 { return .data(file: holders[0].id, path: holders[0].path) }
        if !holders.isEmpty {
            return .unclassified("a data write of one of \(holders.map(\.path)), which hold the same bytes there")
        }
        let files = Set(model.nodes.values.filter { !$0.isDirectory }.map(\.id))
        let writers = bytes.withUnsafeBytes { CrashDataWord.writers(in: $0, among: files) }
        if writers.isEmpty { return .metadata("a metadata write") }
        if writers.count == 1, let node = model.node(id: writers.first!), !node.sharesWords {
            return .data(file: node.id, path: node.path)
        }
        return .unclassified("a data write of files that share data (\(writers.sorted().map { model.node(id: $0)?.path ?? "#\($0)" }))")
    }

    /// The files some version of which reads as `bytes` at a file offset with the same place in
    /// a block as `diskOffset`.
    private static func filesHolding(_ bytes: [UInt8], diskOffset: UInt64, model: CrashModel) -> [CrashModel.Node] {
        let blockSize = model.blockSize
        let withinBlock = Int(diskOffset % UInt64(blockSize))
        let files = model.nodes.values.filter { !$0.isDirectory }.sorted { $0.id < $1.id }
        return files.filter { file in
            file.data.contains { version in
                stride(from: withinBlock, to: version.size, by: blockSize).contains { holds(version, bytes, at: $0) }
            }
        }
    }

    /// Whether `version` reads as `bytes` at `offset` (below its size), zeros past its size.
    private static func holds(_ version: CrashModel.DataVersion, _ bytes: [UInt8], at offset: Int) -> Bool {
        let inData = min(bytes.count, version.size - offset)
        let same = bytes.withUnsafeBytes { written in
            version.bytes.withUnsafeBytes { memcmp(written.baseAddress!, $0.baseAddress! + offset, inData) == 0 }
        }
        return same && bytes[inData...].allSatisfy { $0 == 0 }
    }
}
