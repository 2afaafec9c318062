import ExtentFSCore
import Foundation
import SystemPackage
@testable import ExtentFS

/// One thing wrong with a recovered volume. `key` groups the same failure at many crash points
/// (one report each, with a count); `message` says what differed, for which file.
struct CrashFinding {
    var key: String
    var message: String
}

/// Checks a recovered and mounted volume against what the workload was promised, for a crash
/// after flush `crashAfter` completed (Int.max: after everything the workload issued):
///
/// - every name present existed in its directory at some point between the directory's last
///   durable state and the crash; every name made durable (fsyncdir of its directory, fsync of
///   what it names, sync) and not removed since is present; a file made durable and never
///   unlinked since is somewhere; no file has two names (the workloads make no hard links);
/// - every file's size is one of the sizes its allowed versions had, and each 512-byte sector of
///   it equals that sector of an allowed version that reaches it. The allowed versions run from
///   the last one an fsync or fdatasync made durable to the last one begun before the crash, so
///   a fsynced version holds exactly when nothing changed it since; a later unfsynced overwrite
///   may show per sector; and zeros count only where a version had zeros: with data=ordered, a
///   durable size never covers data that was not written (no "size without data");
/// - a mismatch is explained from the data words: another file's data, zeros, a version older
///   than the durable one, or bytes nobody wrote;
/// - the xattrs are one of the sets the file had between its last fsync and the crash.
struct CrashChecker {
    let fs: FileSystem
    let model: CrashModel
    let crashAfter: Int
    private(set) var findings: [CrashFinding] = []
    private var found: [InodeNumber: String] = [:]
    private var recoveredDirectories: Set<InodeNumber> = []

    init(fs: FileSystem, model: CrashModel, crashAfter: Int) {
        self.fs = fs
        self.model = model
        self.crashAfter = crashAfter
    }

    static func check(fs: FileSystem, model: CrashModel, crashAfter: Int) -> [CrashFinding] {
        var checker = CrashChecker(fs: fs, model: model, crashAfter: crashAfter)
        checker.checkDirectory(model.root, path: "/")
        checker.checkDurableFilesFound()
        return checker.findings
    }

    private mutating func report(_ kind: String, _ path: String, _ message: String) {
        findings.append(CrashFinding(key: "\(kind) \(path)", message: "\(path): \(message)"))
    }

    private func join(_ path: String, _ name: String) -> String { path == "/" ? "/" + name : path + "/" + name }

    // MARK: Directories

    private mutating func checkDirectory(_ directory: CrashModel.Node, path: String) {
        recoveredDirectories.insert(directory.ino)
        var entries: [(name: String, ino: InodeNumber)] = []
        do {
            try fs.readdir(directory.ino, after: 0, plus: false) { entry, _ in
                let name = String(decoding: entry.name, as: UTF8.self)
                if name != "." && name != ".." { entries.append((name, entry.ino)) }
                return true
            }
        } catch {
            return report("readdir", path, "readdir failed: \(error)")
        }
        let versions = directory.entries
        let window = CrashModel.window(versions, began: \.began, durable: directory.entriesDurable, crashAfter: crashAfter)
        for (name, ino) in entries.sorted(by: { $0.name < $1.name }) {
            let childPath = join(path, name)
            if !window.contains(where: { versions[$0].entries[name] == ino }) {
                let had = window.map { versions[$0].entries[name].map { "ino \($0)" } ?? "nothing" }
                report("entry", childPath, "names ino \(ino), but no state of \(path) from its last durable one to the crash had that " +
                       "(states \(window.lowerBound)...\(window.upperBound) had \(Set(had).sorted().joined(separator: ", ")) there)")
            }
            guard let child = model.node(ino: ino) else {
                report("unknown", childPath, "ino \(ino) is no file or directory the workload made")
                continue
            }
            if let other = found[ino] {
                report("two names", childPath, "the same ino \(ino) as \(other): one file under two names")
                continue
            }
            found[ino] = childPath
            if child.isDirectory {
                checkDirectory(child, path: childPath)
            } else {
                checkFile(child, parent: directory.ino, name: name, path: childPath)
            }
        }
        checkDurableNamesPresent(directory, path: path, window: window, present: entries)
    }

    /// A name made durable and not removed since (in any state up to the crash) must be there.
    private mutating func checkDurableNamesPresent(_ directory: CrashModel.Node, path: String, window: ClosedRange<Int>,
                                                   present: [(name: String, ino: InodeNumber)]) {
        let versions = directory.entries
        func stays(_ name: String, _ ino: InodeNumber, from version: Int) -> Bool {
            version <= window.upperBound && (version...window.upperBound).allSatisfy { versions[$0].entries[name] == ino }
        }
        var required: [String: (ino: InodeNumber, why: String)] = [:]
        if let durable = CrashModel.durableBy(directory.entriesDurable, crashAfter: crashAfter) {
            for (name, ino) in versions[durable.version].entries where stays(name, ino, from: durable.version) {
                required[name] = (ino, "\(durable.by) returned before the crash")
            }
        }
        for node in model.nodes.values {
            for durable in node.namesDurable where durable.parent == directory.ino && durable.returned.flushes <= crashAfter {
                if stays(durable.name, node.ino, from: durable.parentVersion) {
                    required[durable.name] = (node.ino, "\(durable.by) returned before the crash")
                }
            }
        }
        for (name, expected) in required.sorted(by: { $0.key < $1.key }) {
            if let entry = present.first(where: { $0.name == name }) {
                if entry.ino != expected.ino {
                    report("durable name", join(path, name), "names ino \(entry.ino), but ino \(expected.ino) was durable there (\(expected.why))")
                }
            } else {
                report("durable name", join(path, name), "missing, though durable (\(expected.why)) and not removed since")
            }
        }
    }

    /// A file or directory whose fsync returned, not unlinked since, must be found somewhere
    /// (a rename after the fsync may leave it under either name), when the directory it was in
    /// then is there.
    private mutating func checkDurableFilesFound() {
        for node in model.nodes.values.sorted(by: { $0.id < $1.id }) where found[node.ino] == nil && node.ino != FileSystem.rootInode {
            let durable = node.namesDurable.filter { $0.returned.flushes <= crashAfter }.max { $0.returned < $1.returned }
            guard let durable, recoveredDirectories.contains(durable.parent) else { continue }
            let lostSince = node.namesLost.contains { $0.operation > durable.returned.operation && $0.flushes <= crashAfter }
            if !lostSince {
                report("durable file", node.path, "missing: \(durable.by) returned before the crash and nothing unlinked it since")
            }
        }
    }

    // MARK: Files

    private mutating func checkFile(_ file: CrashModel.Node, parent: InodeNumber, name: String, path: String) {
        let attributes: FileAttributes
        do {
            attributes = try fs.lookup(parent: parent, name: Array(name.utf8))
        } catch {
            return report("lookup", path, "lookup failed: \(error)")
        }
        guard attributes.type == .regular else {
            return report("type", path, "is a \(attributes.type), the workload made a regular file")
        }
        var content: [UInt8] = []
        do {
            var offset: UInt64 = 0
            while offset < attributes.size {
                var chunk: [UInt8] = []
                try fs.read(file.ino, offset: offset, count: Int(min(attributes.size - offset, 1 << 20))) { chunk = Array($0) }
                guard !chunk.isEmpty else { break }
                content += chunk
                offset += UInt64(chunk.count)
            }
        } catch {
            return report("read", path, "read failed: \(error)")
        }
        if content.count != Int(attributes.size) {
            report("read", path, "read \(content.count) bytes of a \(attributes.size)-byte file")
        }
        checkData(file, content, path: path)
        checkXattrs(file, path: path)
    }

    private mutating func checkData(_ file: CrashModel.Node, _ content: [UInt8], path: String) {
        let versions = file.data
        let window = CrashModel.window(versions, began: \.began, durable: file.dataDurable, crashAfter: crashAfter)
        let durable = CrashModel.durableBy(file.dataDurable, crashAfter: crashAfter)
        let allowed = "versions \(window.lowerBound)...\(window.upperBound) allowed (\(durable.map { "\($0.by) made version \($0.version) durable" } ?? "none fsynced"))"
        let sizes = Set(window.map { versions[$0].size })
        if !sizes.contains(content.count) {
            let described = window.map { "v\($0) \(versions[$0].size) (\(versions[$0].operation))" }.joined(separator: ", ")
            report("size", path, "size \(content.count) is none of the sizes of \(allowed): \(described)")
            return
        }
        let sector = CrashImageBuilder.sectorSize
        var start = 0
        while start < content.count {
            let end = min(start + sector, content.count)
            let candidates = window.filter { versions[$0].zeroedTo > start }
            let matches = content.withUnsafeBytes { recovered in
                candidates.contains { Self.sector(recovered, start, end, equals: versions[$0]) }
            }
            if !matches {
                let (kind, explanation) = diagnose(content, start: start, end: end, file: file, window: window, candidates: candidates)
                report(kind, path, "bytes [\(start), \(end)) match no version that reaches them; \(allowed); \(explanation)")
                return
            }
            start = end
        }
    }

    /// Whether recovered[start..<end] is what `version` has there (zeros past its size).
    private static func sector(_ recovered: UnsafeRawBufferPointer, _ start: Int, _ end: Int, equals version: CrashModel.DataVersion) -> Bool {
        let dataEnd = min(end, max(start, version.size))
        if dataEnd > start {
            let same = version.bytes.withUnsafeBytes { memcmp(recovered.baseAddress! + start, $0.baseAddress! + start, dataEnd - start) == 0 }
            guard same else { return false }
        }
        for index in dataEnd..<end where recovered[index] != 0 { return false }
        return true
    }

    /// What the recovered bytes of a mismatching sector are, as a finding kind and a sentence:
    /// the first word that differs from the latest version reaching it, traced to a version of
    /// this file, another file, or nobody.
    private func diagnose(_ content: [UInt8], start: Int, end: Int, file: CrashModel.Node, window: ClosedRange<Int>,
                          candidates: [Int]) -> (kind: String, text: String) {
        let versions = file.data
        // Compared with the durable version where it reaches the sector, else the latest.
        let reference = candidates.contains(window.lowerBound) ? window.lowerBound : (candidates.last ?? window.upperBound)
        var offset = start
        while offset < end, Self.word(content, at: offset) == Self.word(versions[reference], at: offset) { offset += 8 }
        if offset >= end { offset = start }
        let found = Self.word(content, at: offset) ?? 0
        let expected = "; version \(reference) (\(versions[reference].operation)) has \(describe(Self.word(versions[reference], at: offset), at: offset))"
        let here = "at offset \(offset): "
        let durable = versions[window.lowerBound]
        if candidates.isEmpty {
            return ("size without data", here + "no allowed version reaches it: the size is one only versions ending before it had\(expected)")
        }
        // Zeros are everywhere (holes, truncates, the end of a block): explained by what the
        // durable version has here, not by which versions had zeros.
        if found == 0 {
            // The first zero word no candidate has zeros at: the data missing there is the
            // durable version's, unchanged since (lost), or newer data under a durable size.
            var missing = offset
            var probe = start
            while probe < end {
                if Self.word(content, at: probe) == 0, candidates.allSatisfy({ Self.word(versions[$0], at: probe) != 0 }) {
                    missing = probe
                    break
                }
                probe += 8
            }
            let durableWord = Self.word(durable, at: missing)
            let unchangedSince = window.allSatisfy { Self.word(versions[$0], at: missing).map { $0 == durableWord } ?? true }
            if let durableWord, durableWord != 0, unchangedSince {
                return ("zeros (fsynced data lost)", "at offset \(missing): zeros, where the durable version \(window.lowerBound) " +
                        "has data that no later version changed")
            }
            return ("size without data", "at offset \(missing): zeros, where every allowed version reaching it has data: a size " +
                    "was made durable over data that was never written\(expected)")
        }
        // The versions of this file that have exactly these bytes here: one the crash may show
        // (then the sector mixes versions), or else the latest before the durable one, or else
        // another file's word (even if a later clone brings it here legitimately), or else the
        // first version after the crash point.
        let same = versions.indices.filter { Self.word(versions[$0], at: offset) == found }
        if same.contains(where: window.contains) {
            return ("stale data", here + "data of versions \(same.filter(window.contains)), allowed here, but the rest of " +
                    "the sector matches no allowed version\(expected)")
        }
        if let older = same.last(where: { $0 < window.lowerBound }) {
            return ("stale data", here + "version \(older)'s data, older than the durable version \(window.lowerBound): the fsynced data is not on disk\(expected)")
        }
        // Another file's word anywhere in the sector (at its own file offset, which need not be
        // this one: a block written in place for one file while the durable metadata maps it to
        // another; the first differing word may be only a cut piece of one).
        var probe = start
        while probe < end {
            if let word = Self.word(content, at: probe), let decoded = CrashDataWord.decode(word), decoded.file != file.id,
               let writer = model.node(id: decoded.file), !writer.isDirectory,
               !versions.contains(where: { Self.word($0, at: probe) == word }) {
                return ("foreign data", "at offset \(probe): a word \(writer.path) wrote (its version \(decoded.version), at its " +
                        "offset \(decoded.offset)): another file's data\(expected)")
            }
            probe += 8
        }
        if let later = same.first {
            return ("data from after the crash", here + "version \(later)'s data, a version begun after the crash point\(expected)")
        }
        return ("garbage", here + String(format: "0x%016llx, which no version of this file had there", found) + expected)
    }

    /// The 8 bytes at `offset` (a multiple of 8) as a little-endian word, zeros past the end;
    /// nil past the end of the content.
    private static func word(_ content: [UInt8], at offset: Int) -> UInt64? {
        guard offset < content.count else { return nil }
        return content.withUnsafeBytes { CrashDataWord.word(in: $0, at: offset) }
    }

    /// The version's word at `offset`, zeros past its size; nil where it does not reach.
    private static func word(_ version: CrashModel.DataVersion, at offset: Int) -> UInt64? {
        guard offset < version.zeroedTo else { return nil }
        return offset < version.size ? version.bytes.withUnsafeBytes { CrashDataWord.word(in: $0, at: offset) } : 0
    }

    private func describe(_ word: UInt64?, at offset: Int) -> String {
        guard let word else { return "nothing (it does not reach)" }
        if word == 0 { return "zeros" }
        if let decoded = CrashDataWord.decode(word), decoded.offset == offset & 0x7FF_FFFF {
            return "file #\(decoded.file) version \(decoded.version)'s word"
        }
        return String(format: "0x%016llx", word)
    }

    // MARK: Xattrs

    private mutating func checkXattrs(_ file: CrashModel.Node, path: String) {
        var values: [String: [UInt8]] = [:]
        do {
            for name in try fs.listxattr(file.ino) {
                let text = String(decoding: name, as: UTF8.self)
                guard text.hasPrefix("user.") else { continue }
                values[String(text.dropFirst(5))] = try fs.getxattr(file.ino, name: name)
            }
        } catch {
            return report("xattrs", path, "listing xattrs failed: \(error)")
        }
        let versions = file.xattrs
        let window = CrashModel.window(versions, began: \.began, durable: file.xattrsDurable, crashAfter: crashAfter)
        if !window.contains(where: { versions[$0].values == values }) {
            func show(_ values: [String: [UInt8]]) -> String {
                "{" + values.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(decoding: $0.value, as: UTF8.self))" }.joined(separator: ", ") + "}"
            }
            let durable = CrashModel.durableBy(file.xattrsDurable, crashAfter: crashAfter)
            report("xattrs", path, "xattrs \(show(values)) are none of the sets it had from its last fsync " +
                   "(\(durable?.by ?? "none")) to the crash: \(window.map { show(versions[$0].values) }.joined(separator: ", "))")
        }
    }
}
