import Foundation
import SystemPackage
@testable import ExtentFS

/// Runs crash workload steps on a mounted engine and records each in the model: a step's new
/// versions are recorded before the engine call (a crash or a failure may leave it half done, so
/// its result is one the checks must allow), a durability promise only once the call returned.
/// Keeps FUSE's reference counting honest: create leaves one lookup and one open reference, the
/// kernel forgets a file once it has no name and is not open.
final class CrashWorkloadRunner {
    struct HarnessError: Error, CustomStringConvertible {
        var description: String
    }

    /// A step as it ran: for failure messages.
    struct LogEntry {
        var began: CrashModel.When
        var text: String
        var outcome: String
    }

    private(set) var fs: FileSystem?
    let recorder: CrashRecorder
    let model: CrashModel
    private(set) var log: [LogEntry] = []

    init(fs: FileSystem, recorder: CrashRecorder, blockSize: Int) {
        self.fs = fs
        self.recorder = recorder
        model = CrashModel(blockSize: blockSize, rootBegan: CrashModel.When(flushes: 0, operation: 0))
    }

    /// Drops the engine without unmounting it, as a crash would (releases the image lock once the
    /// last reference goes).
    func abandon() { fs = nil }

    func describe(_ step: CrashStep) -> String {
        func path(_ id: Int) -> String { model.node(id: id)?.path ?? "#\(id)" }
        switch step {
        case .create(let id, let parent, let name, let keepOpen):
            return "create \(model.node(id: parent).map { model.path(parent: $0.ino, name: name) } ?? name) (file #\(id))\(keepOpen ? ", kept open" : "")"
        case .makeDirectory(let id, let parent, let name):
            return "mkdir \(model.node(id: parent).map { model.path(parent: $0.ino, name: name) } ?? name) (#\(id))"
        case .write(let id, let offset, let length): return "write \(path(id)) [\(offset), \(offset + length))"
        case .truncate(let id, let size): return "truncate \(path(id)) to \(size)"
        case .fsync(let id): return "fsync \(path(id))"
        case .fdatasync(let id): return "fdatasync \(path(id))"
        case .fsyncDirectory(let id): return "fsyncdir \(path(id))"
        case .sync: return "sync"
        case .unlink(let id): return "unlink \(path(id))"
        case .close(let id): return "close \(path(id))"
        case .rename(let id, let parent, let name):
            return "rename \(path(id)) to \(model.node(id: parent).map { model.path(parent: $0.ino, name: name) } ?? name)"
        case .removeDirectory(let id): return "rmdir \(path(id))"
        case .clone(let from, let fromOffset, let to, let toOffset, let length):
            return "clone \(path(from)) [\(fromOffset), +\(length)) to \(path(to)) at \(toOffset)"
        case .copyRange(let from, let fromOffset, let to, let toOffset, let length):
            return "copy_file_range \(path(from)) [\(fromOffset), +\(length)) to \(path(to)) at \(toOffset)"
        case .setXattr(let id, let name): return "setxattr \(path(id)) user.\(name)"
        case .removeXattr(let id, let name): return "removexattr \(path(id)) user.\(name)"
        case .dropCaches: return "drop caches"
        case .unmount: return "unmount"
        }
    }

    /// Runs one step; throws what the engine threw, or a HarnessError for a step that does not
    /// apply (a node a failed step never made).
    func run(_ step: CrashStep) throws {
        let began = model.begin(flushes: recorder.flushes)
        let text = describe(step)
        log.append(LogEntry(began: began, text: text, outcome: "running"))
        do {
            try perform(step, began: began, text: text)
            log[log.count - 1].outcome = "returned"
        } catch {
            log[log.count - 1].outcome = "threw \(error)"
            model.failed(began)
            throw error
        }
    }

    /// Where a crash after flush k completed falls: in the step that issued flush k (nil for
    /// k = 0) or in one of the steps begun after it and before flush k + 1.
    func steps(aroundFlush k: Int) -> (issuer: LogEntry?, after: [LogEntry]) {
        (k > 0 ? log.last { $0.began.flushes < k } : nil, log.filter { $0.began.flushes == k })
    }

    private func node(_ id: Int) throws -> CrashModel.Node {
        guard let node = model.node(id: id) else { throw HarnessError(description: "node #\(id) does not exist (a step that made it failed)") }
        return node
    }

    private func engine() throws -> FileSystem {
        guard let fs else { throw HarnessError(description: "the volume was abandoned") }
        return fs
    }

    private func returned(_ began: CrashModel.When) -> CrashModel.When {
        CrashModel.When(flushes: recorder.flushes, operation: began.operation)
    }

    private func perform(_ step: CrashStep, began: CrashModel.When, text: String) throws {
        let fs = try engine()
        switch step {
        case .create(let id, let parentID, let name, let keepOpen):
            let parent = try node(parentID)
            let attributes = try fs.create(parent: parent.ino, name: Array(name.utf8), mode: 0o644, flags: 0, owner: .root)
            let created = model.addNode(id: id, ino: attributes.ino, isDirectory: false, parent: parent.ino, name: name, began: began)
            if keepOpen { created.isOpen = true } else { fs.release(attributes.ino) }

        case .makeDirectory(let id, let parentID, let name):
            let parent = try node(parentID)
            let attributes = try fs.mkdir(parent: parent.ino, name: Array(name.utf8), mode: 0o755, owner: .root)
            _ = model.addNode(id: id, ino: attributes.ino, isDirectory: true, parent: parent.ino, name: name, began: began)

        case .write(let id, let offset, let length):
            let file = try node(id)
            let bytes = CrashDataWord.bytes(file: file.id, version: file.data.count, offset: offset, count: length)
            model.changeData(of: file, began: began, operation: text) { content in
                if content.count < offset + length { content += [UInt8](repeating: 0, count: offset + length - content.count) }
                content.replaceSubrange(offset..<offset + length, with: bytes)
            }
            let written = try bytes.withUnsafeBytes { try fs.write(file.ino, offset: UInt64(offset), $0) }
            guard written == length else { throw HarnessError(description: "short write: \(written) of \(length) bytes") }

        case .truncate(let id, let size):
            let file = try node(id)
            model.changeData(of: file, began: began, operation: text, truncated: true) { content in
                if size < content.count {
                    content.removeSubrange(size...)
                } else {
                    content += [UInt8](repeating: 0, count: size - content.count)
                }
            }
            _ = try fs.setattr(file.ino, AttributeChanges(size: UInt64(size)))

        case .fsync(let id), .fdatasync(let id):
            let file = try node(id)
            let dataOnly: Bool
            if case .fdatasync = step { dataOnly = true } else { dataOnly = false }
            try fs.fsync(file.ino, dataOnly: dataOnly)
            model.fsyncReturned(file, returned: returned(began), by: text, dataOnly: dataOnly)
            recorder.mark("\(text) returned (data version \(file.data.count - 1))")

        case .fsyncDirectory(let id):
            let directory = try node(id)
            try fs.fsyncdir(directory.ino)
            model.fsyncReturned(directory, returned: returned(began), by: text, dataOnly: false)
            recorder.mark("\(text) returned")

        case .sync:
            try fs.sync()
            model.everythingDurable(returned: returned(began), by: text)
            recorder.mark("sync returned")

        case .unlink(let id):
            let file = try node(id)
            guard let parent = file.parent, let name = file.name else { throw HarnessError(description: "\(file.path) has no name") }
            model.removeName(file, began: began)
            try fs.unlink(parent: parent, name: Array(name.utf8))
            if !file.isOpen { fs.forget(file.ino, count: 1) }

        case .close(let id):
            let file = try node(id)
            file.isOpen = false
            fs.release(file.ino)
            if !file.isNamed { fs.forget(file.ino, count: 1) }

        case .rename(let id, let parentID, let name):
            let moving = try node(id)
            let parent = try node(parentID)
            guard let oldParent = moving.parent, let oldName = moving.name else { throw HarnessError(description: "\(moving.path) has no name") }
            let replaced = parent.currentEntries[name].flatMap { model.node(ino: $0) }
            model.move(moving, to: parent.ino, name: name, began: began)
            try fs.rename(parent: oldParent, name: Array(oldName.utf8), newParent: parent.ino, newName: Array(name.utf8), flags: [])
            if let replaced, replaced !== moving, !replaced.isOpen { fs.forget(replaced.ino, count: 1) }

        case .removeDirectory(let id):
            let directory = try node(id)
            guard let parent = directory.parent, let name = directory.name else { throw HarnessError(description: "\(directory.path) has no name") }
            model.removeName(directory, began: began)
            try fs.rmdir(parent: parent, name: Array(name.utf8))
            fs.forget(directory.ino, count: 1)

        case .clone(let fromID, let fromOffset, let toID, let toOffset, let length):
            let source = try node(fromID)
            let destination = try node(toID)
            copyInModel(source, fromOffset, destination, toOffset, length, began: began, text: text)
            let cloned = try fs.clone(from: source.ino, sourceOffset: UInt64(fromOffset), to: destination.ino,
                                      destinationOffset: UInt64(toOffset), length: UInt64(length))
            guard cloned == length else { throw HarnessError(description: "clone shared \(cloned) of \(length) bytes") }

        case .copyRange(let fromID, let fromOffset, let toID, let toOffset, let requested):
            let source = try node(fromID)
            let destination = try node(toID)
            let length = max(0, min(requested, source.current.size - fromOffset))
            // A version after each piece: a crash may leave any prefix of them (CopyRangePieces).
            let pieces = CopyRangePieces.split(sourceOffset: fromOffset, destinationOffset: toOffset, length: length, blockSize: model.blockSize)
            for (index, piece) in pieces.enumerated() {
                let operation = pieces.count > 1 ? "\(text), piece \(index + 1) of \(pieces.count)" : text
                copyInModel(source, fromOffset + piece.lowerBound, destination, toOffset + piece.lowerBound, piece.count,
                            began: began, text: operation)
            }
            let copied = try fs.copyFileRange(from: source.ino, sourceOffset: UInt64(fromOffset), to: destination.ino,
                                              destinationOffset: UInt64(toOffset), length: UInt64(requested))
            guard copied == length else { throw HarnessError(description: "copy_file_range copied \(copied) of \(length) bytes") }

        case .setXattr(let id, let name):
            let target = try node(id)
            let value = Array("value \(target.id).\(target.xattrs.count)".utf8)
            model.changeXattrs(of: target, began: began) { $0[name] = value }
            try fs.setxattr(target.ino, name: Array("user.\(name)".utf8), value: value, flags: [])

        case .removeXattr(let id, let name):
            let target = try node(id)
            model.changeXattrs(of: target, began: began) { $0[name] = nil }
            try fs.removexattr(target.ino, name: Array("user.\(name)".utf8))

        case .dropCaches:
            try fs.writebackAll()
            for node in model.nodes.values where !node.isDirectory {
                guard let space = try? fs.inode(node.ino).pages else { continue }
                for page in space.evictClean(from: 0, to: .max) { fs.cache.pageRemoved(page) }
            }

        case .unmount:
            try fs.unmount()
            model.everythingDurable(returned: returned(began), by: text)
            recorder.mark("unmount returned")
        }
    }

    private func copyInModel(_ source: CrashModel.Node, _ fromOffset: Int, _ destination: CrashModel.Node, _ toOffset: Int,
                             _ length: Int, began: CrashModel.When, text: String) {
        guard length > 0 else { return }
        let bytes = Array(source.current.bytes[fromOffset..<fromOffset + length])
        source.sharesWords = true
        destination.sharesWords = true
        model.changeData(of: destination, began: began, operation: text) { content in
            if content.count < toOffset + length { content += [UInt8](repeating: 0, count: toOffset + length - content.count) }
            content.replaceSubrange(toOffset..<toOffset + length, with: bytes)
        }
    }
}
