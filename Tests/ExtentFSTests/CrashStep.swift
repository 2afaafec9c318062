import Foundation

/// One operation of a crash workload. Files and directories are named by the workload's own
/// numbers (0 is the root), since inode numbers are known only once the engine made them.
enum CrashStep {
    case create(Int, in: Int, name: String, keepOpen: Bool)
    case makeDirectory(Int, in: Int, name: String)
    case write(Int, offset: Int, length: Int)
    case truncate(Int, size: Int)
    case fsync(Int)
    case fdatasync(Int)
    case fsyncDirectory(Int)
    case sync
    /// Removes the name; an open file stays until closed (then it is an orphan a crash leaves).
    case unlink(Int)
    /// Releases an open file; an unlinked one goes with it.
    case close(Int)
    /// Moves to `name` in directory `to`, replacing the file that has that name.
    case rename(Int, to: Int, name: String)
    case removeDirectory(Int)
    case clone(from: Int, sourceOffset: Int, to: Int, destinationOffset: Int, length: Int)
    case copyRange(from: Int, sourceOffset: Int, to: Int, destinationOffset: Int, length: Int)
    case setXattr(Int, name: String)
    case removeXattr(Int, name: String)
    /// Writes every dirty page back (no flush) and evicts every clean page, as memory pressure
    /// might: later overwrites of whole blocks then go straight to the image
    /// (FileSystem+WriteThrough.swift).
    case dropCaches
    case unmount

    /// fsync, fdatasync, fsyncdir, sync and unmount: calls that promise durability when they
    /// return, and so must not return success when a write or flush they issued failed.
    var promisesDurability: Bool {
        switch self {
        case .fsync, .fdatasync, .fsyncDirectory, .sync, .unmount: return true
        default: return false
        }
    }

    /// The node a per-file fsync or fdatasync is for.
    var fsyncTarget: Int? {
        switch self {
        case .fsync(let id), .fdatasync(let id): return id
        default: return nil
        }
    }
}
