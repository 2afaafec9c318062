import SystemPackage
@testable import ExtentFSCore

/// SplitMix64: the same seed gives the same sequence on every machine and run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Nodes in a dictionary. Records every write to an address it was told to protect (one the last
/// durable checkpoint reaches), which the tree must never do.
final class MemoryNodeDevice: NodeDevice {
    let nodeSize: Int
    var nodes: [UInt64: [UInt8]] = [:]
    var protected: Set<UInt64> = []
    private(set) var protectedWrites: [UInt64] = []
    private(set) var reads = 0
    private(set) var writes = 0
    /// Writes left before every write fails with EIO; nil: never.
    var writesBeforeFailure: Int?

    init(nodeSize: Int) { self.nodeSize = nodeSize }

    func readNode(at address: UInt64) throws -> [UInt8] {
        reads += 1
        guard let bytes = nodes[address] else { throw Errno.ioError }
        return bytes
    }

    func writeNode(_ bytes: [UInt8], at address: UInt64) throws {
        if let left = writesBeforeFailure {
            guard left > 0 else { throw Errno.ioError }
            writesBeforeFailure = left - 1
        }
        precondition(bytes.count == nodeSize)
        if protected.contains(address) { protectedWrites.append(address) }
        writes += 1
        nodes[address] = bytes
    }
}

/// Addresses from a counter, reused only after `checkpointDurable()`, as the engine's allocator
/// must (NodeAllocator's contract). Tracks what is live to prove that no address leaks and none is
/// released twice; can poison what becomes reusable, as another writer reusing it would.
final class TestNodeAllocator: NodeAllocator {
    private var nextAddress: UInt64 = 1000
    private var reusable: [UInt64] = []
    private(set) var pending: [UInt64] = []
    private(set) var live: Set<UInt64> = []
    private(set) var errors: [String] = []
    private(set) var allocations = 0
    /// Allocations left before allocateNode throws ENOSPC; nil: never.
    var allocationsBeforeFailure: Int?
    /// Reuse freed addresses (lowest first) before new ones; off, every address is new.
    var reuses = true

    func allocateNode() throws -> UInt64 {
        if let left = allocationsBeforeFailure {
            guard left > 0 else { throw Errno.noSpace }
            allocationsBeforeFailure = left - 1
        }
        allocations += 1
        let address: UInt64
        if reuses, let reused = reusable.popLast() {
            address = reused
        } else {
            address = nextAddress
            nextAddress += 1
        }
        if !live.insert(address).inserted { errors.append("address \(address) handed out while live") }
        return address
    }

    func releaseNode(_ address: UInt64) {
        if live.remove(address) == nil { errors.append("address \(address) released while not live") }
        pending.append(address)
    }

    /// The checkpoint that stopped referencing `pending` is on disk: those may be reused now.
    func checkpointDurable(poisoning device: MemoryNodeDevice? = nil) {
        if let device {
            for address in pending where device.nodes[address] != nil {
                device.nodes[address] = [UInt8](repeating: 0xA5, count: device.nodeSize)
            }
        }
        reusable += pending
        reusable.sort(by: >)
        pending = []
    }
}

/// The reference: a dictionary and its keys kept sorted.
struct TreeModel {
    private(set) var values: [TreeKey: [UInt8]] = [:]
    private(set) var keys: [TreeKey] = []

    var count: Int { keys.count }

    private func position(of key: TreeKey) -> Int {
        var low = 0, high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    mutating func insert(_ key: TreeKey, _ value: [UInt8]) {
        if values.updateValue(value, forKey: key) == nil { keys.insert(key, at: position(of: key)) }
    }

    mutating func remove(_ key: TreeKey) -> Bool {
        guard values.removeValue(forKey: key) != nil else { return false }
        keys.remove(at: position(of: key))
        return true
    }

    func items(from start: TreeKey, through end: TreeKey?, limit: Int = .max) -> [TreeItem] {
        var result: [TreeItem] = []
        var index = position(of: start)
        while index < keys.count, result.count < limit {
            let key = keys[index]
            if let end, end < key { break }
            result.append(TreeItem(key: key, value: values[key]!))
            index += 1
        }
        return result
    }

    func lastItem(atOrBelow key: TreeKey) -> TreeItem? {
        let index = position(of: key)
        if index < keys.count, keys[index] == key { return TreeItem(key: key, value: values[key]!) }
        guard index > 0 else { return nil }
        return TreeItem(key: keys[index - 1], value: values[keys[index - 1]]!)
    }

    var allItems: [TreeItem] { keys.map { TreeItem(key: $0, value: values[$0]!) } }
}
