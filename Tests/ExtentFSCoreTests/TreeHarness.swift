import XCTest
@testable import ExtentFSCore

/// A tree on a memory device with the checking allocator, committed and reopened the way the
/// engine will: generation = checkpoint number, allocator told when the checkpoint is durable.
final class TreeHarness {
    let device: MemoryNodeDevice
    let allocator = TestNodeAllocator()
    var cache: NodeCache
    var tree: BTree
    var generation: UInt64 = 0
    let owner: UInt8 = 7

    init(nodeSize: Int, cacheBudget: Int = 1 << 20) throws {
        device = MemoryNodeDevice(nodeSize: nodeSize)
        cache = NodeCache(budgetBytes: cacheBudget)
        tree = try BTree(root: nil, owner: owner, device: device, allocator: allocator, cache: cache)
    }

    /// Commit, then check the tree's shape and that the allocator's live set is exactly what the
    /// new root reaches (no leak, no double release). The checkpoint is then durable.
    @discardableResult
    func commitAndCheck(expectedItems: Int, file: StaticString = #filePath, line: UInt = #line) throws -> TreeRoot? {
        generation += 1
        let root = try tree.commit(generation: generation)
        XCTAssertEqual(tree.dirtyNodes, 0, file: file, line: line)
        XCTAssertEqual(cache.pinnedBytes, 0, file: file, line: line)
        let report = try tree.check()
        XCTAssertEqual(report.items, expectedItems, file: file, line: line)
        XCTAssertEqual(report.underfilledNodes, 0, "nodes under a quarter full", file: file, line: line)
        XCTAssertEqual(report.dirtyNodes, 0, file: file, line: line)
        let reachable = Set(report.storedAddresses)
        XCTAssertEqual(reachable.count, report.storedAddresses.count, "an address reached twice", file: file, line: line)
        XCTAssertEqual(reachable, allocator.live, "allocated but unreachable, or reachable but released", file: file, line: line)
        XCTAssertEqual(allocator.errors, [], file: file, line: line)
        allocator.checkpointDurable()
        device.protected = reachable
        XCTAssertEqual(device.protectedWrites, [], "a live node was overwritten", file: file, line: line)
        return root
    }

    /// Inserts `keys` into an empty tree in the order given, each with `value(key)`, committing
    /// and checking after every `commitEvery` and after the last.
    func insertIntoEmptyTree(_ keys: [TreeKey], commitEvery: Int, value: (TreeKey) -> [UInt8],
                             file: StaticString = #filePath, line: UInt = #line) throws {
        for (index, key) in keys.enumerated() {
            try tree.insert(key, value(key))
            if (index + 1) % commitEvery == 0 { try commitAndCheck(expectedItems: index + 1, file: file, line: line) }
        }
        if keys.count % commitEvery != 0 { try commitAndCheck(expectedItems: keys.count, file: file, line: line) }
    }

    /// The tree as a remount would see it: the committed root, a fresh cache, everything read back.
    func reopen(cacheBudget: Int = 1 << 20) throws {
        XCTAssertFalse(tree.hasChanges)
        cache = NodeCache(budgetBytes: cacheBudget)
        tree = try BTree(root: tree.committedRoot, owner: owner, device: device, allocator: allocator, cache: cache)
    }
}

func randomKey(_ random: inout SeededGenerator, objects: UInt64 = 64) -> TreeKey {
    // Clustered objects and kinds (as a volume's are), offsets small or anywhere.
    let offset = random.next() % 4 == 0 ? random.next() : random.next() % 2000
    return TreeKey(object: random.next() % objects, kind: UInt8(random.next() % 4), offset: offset)
}

func randomValue(_ random: inout SeededGenerator, maxSize: Int) -> [UInt8] {
    let size: Int
    switch random.next() % 10 {
    case 0: size = maxSize
    case 1, 2: size = Int(random.next() % UInt64(maxSize + 1))
    case 3: size = 0
    default: size = Int(random.next() % UInt64(min(64, maxSize) + 1))
    }
    return (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}
