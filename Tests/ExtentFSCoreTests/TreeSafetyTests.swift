import SystemPackage
import XCTest
@testable import ExtentFSCore

/// Copy-on-write safety, commit failures and the cache budget.
final class TreeSafetyTests: XCTestCase {
    /// After commit N, heavy changes and commit N+1: root N still reads back state N, since no node
    /// it reaches was written over; once N+1 is durable and the released nodes are reused (here:
    /// poisoned), N+1 still reads back and N is gone. Several rounds, reusing addresses throughout.
    func testPreviousCommitStaysIntactUntilTheNextIsDurable() throws {
        let harness = try TreeHarness(nodeSize: 1024, cacheBudget: 64 * 1024)
        var random = SeededGenerator(seed: 9)
        var model = TreeModel()
        for _ in 0..<3000 {
            let key = randomKey(&random, objects: 16), value = randomValue(&random, maxSize: 100)
            try harness.tree.insert(key, value)
            model.insert(key, value)
        }
        var previousRoot = try harness.commitAndCheck(expectedItems: model.count)
        var previousModel = model
        for round in 0..<6 {
            for _ in 0..<2500 {
                let key = model.count > 0 && random.next() % 2 == 0 ? model.keys[Int(random.next() % UInt64(model.count))] : randomKey(&random, objects: 16)
                if random.next() % 3 == 0 {
                    _ = try harness.tree.remove(key)
                    _ = model.remove(key)
                } else {
                    let value = randomValue(&random, maxSize: harness.tree.maxValueSize)
                    try harness.tree.insert(key, value)
                    model.insert(key, value)
                }
            }
            // Commit N+1, not yet durable: everything N reaches is untouched.
            harness.generation += 1
            let root = try harness.tree.commit(generation: harness.generation)
            XCTAssertEqual(harness.device.protectedWrites, [], "round \(round)")
            XCTAssertEqual(try openedItems(harness, root: previousRoot), previousModel.allItems, "round \(round): state N")
            XCTAssertEqual(try openedItems(harness, root: root), model.allItems, "round \(round): state N+1")
            // N+1 durable: the nodes only N reached are reused by someone (poisoned).
            let released = harness.allocator.pending
            harness.allocator.checkpointDurable(poisoning: harness.device)
            harness.device.protected = Set(try harness.tree.check().storedAddresses)
            XCTAssertEqual(try openedItems(harness, root: root), model.allItems, "round \(round): N+1 after reuse")
            if !released.isEmpty {
                XCTAssertThrowsError(try openedItems(harness, root: previousRoot), "round \(round): N was reused") {
                    XCTAssertNotNil($0 as? TreeError)
                }
            }
            XCTAssertEqual(harness.allocator.errors, [])
            previousRoot = root
            previousModel = model
        }
    }

    private func openedItems(_ harness: TreeHarness, root: TreeRoot?) throws -> [TreeItem] {
        try BTree(root: root, owner: harness.owner, device: harness.device, allocator: TestNodeAllocator(),
                  cache: NodeCache(budgetBytes: 1 << 20)).items()
    }

    /// A commit that runs out of space or fails a write leaves the tree as it was (dirty, same
    /// items), gives back what it allocated, and a later commit succeeds.
    func testFailedCommitChangesNothing() throws {
        let harness = try TreeHarness(nodeSize: 1024)
        var model = TreeModel()
        var random = SeededGenerator(seed: 3)
        for round in 0..<8 {
            for _ in 0..<400 {
                let key = randomKey(&random, objects: 8), value = randomValue(&random, maxSize: 120)
                try harness.tree.insert(key, value)
                model.insert(key, value)
            }
            let dirty = harness.tree.dirtyNodes
            if round % 2 == 0 {
                harness.allocator.allocationsBeforeFailure = Int(random.next() % UInt64(dirty))
                XCTAssertThrowsError(try harness.tree.commit(generation: harness.generation + 1)) {
                    XCTAssertEqual($0 as? Errno, .noSpace)
                }
                harness.allocator.allocationsBeforeFailure = nil
            } else {
                harness.device.writesBeforeFailure = Int(random.next() % UInt64(dirty))
                XCTAssertThrowsError(try harness.tree.commit(generation: harness.generation + 1)) {
                    XCTAssertEqual($0 as? Errno, .ioError)
                }
                harness.device.writesBeforeFailure = nil
            }
            XCTAssertEqual(harness.tree.dirtyNodes, dirty)
            XCTAssertTrue(harness.tree.hasChanges)
            XCTAssertEqual(try harness.tree.items(), model.allItems)
            try harness.commitAndCheck(expectedItems: model.count)
            try harness.reopen()
            XCTAssertEqual(try harness.tree.items(), model.allItems)
        }
    }

    func testGenerationMustAdvance() throws {
        let harness = try TreeHarness(nodeSize: 1024)
        try harness.tree.insert(.min, [1])
        try harness.commitAndCheck(expectedItems: 1)
        try harness.tree.insert(.max, [2])
        XCTAssertThrowsError(try harness.tree.commit(generation: harness.generation)) {
            XCTAssertEqual($0 as? TreeError, .generationNotNewer(given: harness.generation, committed: harness.generation))
        }
        try harness.commitAndCheck(expectedItems: 2)
        // Nothing changed: no write, same root.
        let writes = harness.device.writes
        XCTAssertEqual(try harness.tree.commit(generation: harness.generation + 5), harness.tree.committedRoot)
        XCTAssertEqual(harness.device.writes, writes)
        // Removing a missing key copies nothing.
        XCTAssertFalse(try harness.tree.remove(TreeKey(object: 3, kind: 3, offset: 3)))
        XCTAssertFalse(harness.tree.hasChanges)
    }

    /// A tiny budget: scans and lookups over a big tree keep the cache within it (the cursor's
    /// path is the only other memory), and the counters see the misses.
    func testCacheStaysWithinBudget() throws {
        let harness = try TreeHarness(nodeSize: 1024)
        for index in 0..<20_000 {
            try harness.tree.insert(TreeKey(object: UInt64(index / 50), kind: 2, offset: UInt64(index)), [UInt8](repeating: 7, count: index % 40))
        }
        try harness.commitAndCheck(expectedItems: 20_000)
        let budget = 6 * 1024
        try harness.reopen(cacheBudget: budget)
        let cache = harness.cache
        var cursor = harness.tree.cursor()
        var count = 0
        while try cursor.next() != nil {
            count += 1
            XCTAssertLessThanOrEqual(cache.cleanBytes, budget)
        }
        XCTAssertEqual(count, 20_000)
        var random = SeededGenerator(seed: 5)
        for _ in 0..<2000 {
            let index = random.next() % 20_000
            XCTAssertNotNil(try harness.tree.lookup(TreeKey(object: index / 50, kind: 2, offset: index)))
            XCTAssertLessThanOrEqual(cache.cleanBytes, budget)
        }
        XCTAssertGreaterThan(cache.misses, 20_000 / 40)
        XCTAssertGreaterThan(cache.hits, 0)
        XCTAssertGreaterThan(cache.evictions, 0)
        // Dirty nodes count against the budget: clean ones make way.
        for index in 0..<300 { try harness.tree.insert(TreeKey(object: UInt64(index * 60), kind: 2, offset: .max), [1]) }
        XCTAssertEqual(cache.pinnedBytes, harness.tree.dirtyNodes * 1024)
        XCTAssertLessThanOrEqual(cache.cleanBytes, max(0, budget - cache.pinnedBytes))
        try harness.commitAndCheck(expectedItems: 20_300)
        XCTAssertEqual(cache.pinnedBytes, 0)
        XCTAssertLessThanOrEqual(cache.cleanBytes, budget)
    }

    /// With a big enough budget, a second pass reads nothing from the device.
    func testWarmCacheReadsNothing() throws {
        let harness = try TreeHarness(nodeSize: 4096, cacheBudget: 4 << 20)
        for index in 0..<5000 { try harness.tree.insert(TreeKey(object: UInt64(index), kind: 0, offset: 0), [UInt8](repeating: 1, count: 30)) }
        try harness.commitAndCheck(expectedItems: 5000)
        try harness.reopen(cacheBudget: 4 << 20)
        _ = try harness.tree.items()
        let reads = harness.device.reads
        _ = try harness.tree.items()
        for index in stride(from: 0, to: 5000, by: 7) { _ = try harness.tree.lookup(TreeKey(object: UInt64(index), kind: 0, offset: 0)) }
        XCTAssertEqual(harness.device.reads, reads)
    }

    /// Random lookups in a tree many times the cache: each reads a leaf nobody reads again, and
    /// the internal nodes above them stay cached (they cost one read each, once), so a lookup
    /// reads about one node, not its leaf and the leaf's parent.
    func testInternalNodesOutstayLeavesReadOnce() throws {
        let harness = try TreeHarness(nodeSize: 1024)
        var random = SeededGenerator(seed: 11)
        let keys = (0..<60_000).map { TreeKey(object: UInt64($0), kind: 1, offset: 0) }.shuffled(using: &random)
        try harness.insertIntoEmptyTree(keys, commitEvery: 20_000) { _ in [UInt8](repeating: 3, count: 24) }
        let report = try harness.tree.check()
        XCTAssertGreaterThan(report.nodes, 2_000)
        // A tenth of the tree: room for the internal nodes (about a twentieth) and some leaves.
        try harness.reopen(cacheBudget: (report.nodes / 10) * 1024)
        let before = harness.device.reads
        let lookups = 5_000
        for _ in 0..<lookups {
            let key = TreeKey(object: random.next() % 60_000, kind: 1, offset: 0)
            XCTAssertNotNil(try harness.tree.lookup(key))
        }
        let reads = harness.device.reads - before
        // At most a read a lookup (its leaf; a tenth of the leaves fit), plus each internal node
        // once (about one node in twenty at this size). Without the internal nodes' chances
        // this read 5,724 nodes (their misses), with them 5,043.
        XCTAssertLessThan(reads, lookups + report.nodes / 20 + lookups / 50,
                          "\(reads) node reads for \(lookups) lookups: internal nodes were read again")
    }
}
