import ExtentFSCore
import Foundation
@testable import ExtentFS

/// What a crash workload did, kept as the crash checks need it: every state each file's data and
/// xattrs and each directory's entries went through, when each state began (in flushes issued),
/// and which states an fsync, fdatasync, fsyncdir or sync made durable (in flushes issued when it
/// returned). The checks never ask what the engine holds, only what the workload was promised.
///
/// For a crash after flush k completed, the states a file may show run from the last one made
/// durable by a call that returned with at most k flushes issued, to the last one whose operation
/// began with at most k flushes issued (its writes can be among those in flight after flush k).
final class CrashModel {
    /// When something happened: the flushes issued by then, and the operation's place in the
    /// workload (stamps do not order operations between two flushes; this does).
    struct When: Comparable {
        var flushes: Int
        var operation: Int
        static func < (a: When, b: When) -> Bool { a.operation < b.operation }
    }

    struct DataVersion {
        var bytes: [UInt8]
        /// Past the size, the version reads as zeros up to here: the rest of the last sector, or
        /// after a truncate the rest of the last block (truncate zeroes it, and that can reach
        /// the disk before the new size does).
        var zeroedTo: Int
        var began: When
        var operation: String
        var size: Int { bytes.count }
    }

    struct XattrVersion {
        var values: [String: [UInt8]]
        var began: When
    }

    struct EntriesVersion {
        var entries: [String: InodeNumber]
        var began: When
    }

    /// A version a call made durable when it returned.
    struct Durable {
        var returned: When
        var version: Int
        var by: String
    }

    /// An entry (name → ino in a directory) made durable by fsync of the file or directory it
    /// names, as of `parentVersion` of the directory's entries.
    struct DurableName {
        var returned: When
        var parent: InodeNumber
        var name: String
        var parentVersion: Int
        var by: String
    }

    final class Node {
        /// The workload's number for it: the file id in its data words.
        let id: Int
        let ino: InodeNumber
        let isDirectory: Bool
        var parent: InodeNumber?
        var name: String?
        var path: String
        var isOpen = false
        var data: [DataVersion] = []
        var xattrs: [XattrVersion] = []
        var entries: [EntriesVersion] = []
        var dataDurable: [Durable] = []
        var xattrsDurable: [Durable] = []
        var entriesDurable: [Durable] = []
        var namesDurable: [DurableName] = []
        /// Operations that took its last name away (unlink, rename over it, rmdir).
        var namesLost: [When] = []
        /// Its words were copied or cloned into another file, or another file's into it: a data
        /// write holding its words may belong to another file.
        var sharesWords = false

        init(id: Int, ino: InodeNumber, isDirectory: Bool, parent: InodeNumber?, name: String?, path: String) {
            self.id = id
            self.ino = ino
            self.isDirectory = isDirectory
            self.parent = parent
            self.name = name
            self.path = path
        }

        var current: DataVersion { data[data.count - 1] }
        var currentEntries: [String: InodeNumber] { entries.last?.entries ?? [:] }
        var isNamed: Bool { parent != nil }
    }

    let blockSize: Int
    private(set) var nodes: [InodeNumber: Node] = [:]
    private(set) var nodesByID: [Int: Node] = [:]
    private(set) var operations = 0
    /// Operations that threw: the engine may have done them or not, so the versions they began
    /// are allowed but never promised by a later fsync or sync.
    private(set) var failedOperations: Set<Int> = []

    init(blockSize: Int, rootBegan: When) {
        self.blockSize = blockSize
        let root = Node(id: 0, ino: FileSystem.rootInode, isDirectory: true, parent: nil, name: nil, path: "/")
        root.entries = [EntriesVersion(entries: [:], began: rootBegan)]
        root.xattrs = [XattrVersion(values: [:], began: rootBegan)]
        // mkfs made the empty root durable.
        root.entriesDurable = [Durable(returned: rootBegan, version: 0, by: "mkfs")]
        root.xattrsDurable = [Durable(returned: rootBegan, version: 0, by: "mkfs")]
        nodes[root.ino] = root
        nodesByID[0] = root
    }

    var root: Node { nodes[FileSystem.rootInode]! }

    func node(id: Int) -> Node? { nodesByID[id] }
    func node(ino: InodeNumber) -> Node? { nodes[ino] }

    /// Starts an operation: its place in the workload, stamped with the flushes issued so far.
    func begin(flushes: Int) -> When {
        operations += 1
        return When(flushes: flushes, operation: operations)
    }

    func failed(_ operation: When) { failedOperations.insert(operation.operation) }

    /// The last version a durability call that returns now promises: the last one begun by an
    /// operation that did not fail.
    private func promised<T>(_ versions: [T], began: (T) -> When) -> Int {
        versions.lastIndex { !failedOperations.contains(began($0).operation) } ?? 0
    }

    func path(parent: InodeNumber, name: String) -> String {
        let parentPath = nodes[parent]!.path
        return parentPath == "/" ? "/" + name : parentPath + "/" + name
    }

    // MARK: Changes

    func addNode(id: Int, ino: InodeNumber, isDirectory: Bool, parent: InodeNumber, name: String, began: When) -> Node {
        let node = Node(id: id, ino: ino, isDirectory: isDirectory, parent: parent, name: name, path: path(parent: parent, name: name))
        if isDirectory {
            node.entries = [EntriesVersion(entries: [:], began: began)]
        } else {
            node.data = [DataVersion(bytes: [], zeroedTo: 0, began: began, operation: "create")]
        }
        node.xattrs = [XattrVersion(values: [:], began: began)]
        nodes[ino] = node
        nodesByID[id] = node
        changeEntries(of: parent, began: began) { $0[name] = ino }
        return node
    }

    func changeEntries(of directory: InodeNumber, began: When, _ change: (inout [String: InodeNumber]) -> Void) {
        let node = nodes[directory]!
        var entries = node.currentEntries
        change(&entries)
        node.entries.append(EntriesVersion(entries: entries, began: began))
    }

    /// A new data version: `change` edits a copy of the current bytes.
    func changeData(of node: Node, began: When, operation: String, truncated: Bool = false, _ change: (inout [UInt8]) -> Void) {
        var bytes = node.current.bytes
        change(&bytes)
        let sector = CrashImageBuilder.sectorSize
        let granule = truncated ? blockSize : sector
        let zeroedTo = (bytes.count + granule - 1) / granule * granule
        node.data.append(DataVersion(bytes: bytes, zeroedTo: zeroedTo, began: began, operation: operation))
    }

    func changeXattrs(of node: Node, began: When, _ change: (inout [String: [UInt8]]) -> Void) {
        var values = node.xattrs.last!.values
        change(&values)
        node.xattrs.append(XattrVersion(values: values, began: began))
    }

    /// Removes a name; the node it named loses it.
    func removeName(_ node: Node, began: When) {
        guard let parent = node.parent, let name = node.name else { return }
        changeEntries(of: parent, began: began) { $0[name] = nil }
        node.parent = nil
        node.name = nil
        node.namesLost.append(began)
    }

    func move(_ node: Node, to parent: InodeNumber, name: String, began: When) {
        if let replaced = nodes[parent]!.currentEntries[name].flatMap({ nodes[$0] }), replaced !== node {
            removeName(replaced, began: began)
        }
        if let oldParent = node.parent, let oldName = node.name {
            if oldParent == parent {
                changeEntries(of: parent, began: began) { $0[oldName] = nil; $0[name] = node.ino }
            } else {
                changeEntries(of: oldParent, began: began) { $0[oldName] = nil }
                changeEntries(of: parent, began: began) { $0[name] = node.ino }
            }
        }
        node.parent = parent
        node.name = name
        renamePaths(node, to: path(parent: parent, name: name))
    }

    private func renamePaths(_ node: Node, to path: String) {
        node.path = path
        guard node.isDirectory else { return }
        for (name, ino) in node.currentEntries {
            if let child = nodes[ino] { renamePaths(child, to: self.path(parent: node.ino, name: name)) }
        }
    }

    // MARK: Durability

    /// fsync (full) of a file or fsyncdir of a directory returned.
    func fsyncReturned(_ node: Node, returned: When, by: String, dataOnly: Bool) {
        if !node.isDirectory {
            node.dataDurable.append(Durable(returned: returned, version: promised(node.data, began: \.began), by: by))
        }
        guard !dataOnly else { return }
        node.xattrsDurable.append(Durable(returned: returned, version: promised(node.xattrs, began: \.began), by: by))
        if node.isDirectory {
            node.entriesDurable.append(Durable(returned: returned, version: promised(node.entries, began: \.began), by: by))
        }
        if let parent = node.parent, let name = node.name, !(nodes[parent]!.entries.last.map { failedOperations.contains($0.began.operation) } ?? false) {
            node.namesDurable.append(DurableName(returned: returned, parent: parent, name: name,
                                                 parentVersion: nodes[parent]!.entries.count - 1, by: by))
        }
    }

    /// sync or a clean unmount returned: everything the workload did is durable.
    func everythingDurable(returned: When, by: String) {
        for node in nodes.values where node.isNamed || node.ino == FileSystem.rootInode || node.isOpen {
            fsyncReturned(node, returned: returned, by: by, dataOnly: false)
        }
    }

    // MARK: Queries at a crash point

    /// The versions a crash after flush `k` completed may show, from the durable one to the last
    /// begun. `began` and `durable` pick the list.
    static func window<T>(_ versions: [T], began: (T) -> When, durable: [Durable], crashAfter k: Int) -> ClosedRange<Int> {
        let last = versions.lastIndex { began($0).flushes <= k } ?? 0
        let first = durable.filter { $0.returned.flushes <= k }.map(\.version).max() ?? 0
        return min(first, last)...last
    }

    /// The durability call (returned with at most k flushes) that set the window's start.
    static func durableBy(_ durable: [Durable], crashAfter k: Int) -> Durable? {
        durable.filter { $0.returned.flushes <= k }.max { $0.version < $1.version }
    }
}
