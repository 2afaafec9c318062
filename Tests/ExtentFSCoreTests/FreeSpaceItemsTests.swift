import XCTest
@testable import ExtentFSCore

/// The tree's free space (MetadataTree+FreeSpace) against a model: after any sequence of changes,
/// each recorded by rewriting only the ranges it touched, the items by position are exactly the
/// model's free runs, maximal, and the items by size are the same runs in size order.
final class FreeSpaceItemsTests: XCTestCase {
    private func metadataTree(_ harness: TreeHarness, blockCount: UInt64) -> MetadataTree {
        let superblock = Superblock(blockSize: UInt32(harness.device.nodeSize), blockCount: blockCount, maxInodes: 1024,
                                    uuid: Array(repeating: 7, count: 16), sequence: 1, checkpoint: .tree(nil),
                                    log: LogRegion(firstBlock: 20, blockCount: 12))
        return MetadataTree(tree: harness.tree, superblock: superblock)
    }

    private func storedRuns(_ tree: MetadataTree) throws -> (byPosition: [BlockRun], bySize: [BlockRun]) {
        let byPosition = try tree.tree.items(from: MetadataTree.freeSpaceKey(0), through: MetadataTree.freeSpaceKey(.max))
            .map { try tree.decodeFreeSpace($0) }
        let bySize = try tree.tree.items(from: TreeKey(object: MetadataTree.freeBySizeObjectBase, kind: 0, offset: 0))
            .map { try tree.decodeFreeBySize($0) }
        return (byPosition, bySize)
    }

    /// Random runs taken and given back, recorded range by range, committed now and then; at
    /// every node size. The model is the set of used blocks.
    func testRandomChangesKeepBothIndexesExact() throws {
        for nodeSize in [512, 4096, 16384] {
            let harness = try TreeHarness(nodeSize: nodeSize)
            let blockCount: UInt64 = 200_000
            let tree = metadataTree(harness, blockCount: blockCount)
            let data = BlockRun(start: tree.superblock.firstAllocatableBlock, count: blockCount - tree.superblock.firstAllocatableBlock)
            var used = BlockRunSet()
            var random = SeededGenerator(seed: UInt64(nodeSize))
            let free = { (range: BlockRun) -> [BlockRun] in
                var set = BlockRunSet([range])
                for run in used.runs(within: range) { set.remove(run) }
                return set.runs
            }
            try tree.replaceFreeSpace(over: [data], free: free)
            for round in 0..<300 {
                var changed: [BlockRun] = []
                for _ in 0..<(1 + random.next() % 12) {
                    let length = random.next() % 4 == 0 ? 1 + random.next() % 5_000 : 1 + random.next() % 8
                    let start = data.start + random.next() % (data.count - length)
                    let run = BlockRun(start: start, count: length)
                    if random.next() % 2 == 0 { used.insert(run) } else { used.remove(run) }
                    changed.append(run)
                }
                try tree.replaceFreeSpace(over: changed, free: free)
                if round % 25 == 0 { _ = try harness.tree.commit(generation: UInt64(round + 1)); harness.allocator.checkpointDurable() }
                var expected = BlockRunSet([data])
                for run in used.runs { expected.remove(run) }
                let stored = try storedRuns(tree)
                XCTAssertEqual(stored.byPosition, expected.runs, "node size \(nodeSize), round \(round)")
                let bySizeOrder = expected.runs.sorted { ($0.count, $0.start) < ($1.count, $1.start) }
                XCTAssertEqual(stored.bySize, bySizeOrder, "node size \(nodeSize), round \(round)")
                if stored.byPosition != expected.runs { return }
            }
        }
    }

    /// The one-pass set operations against block-by-block sets.
    func testComplementAndSubtractionAgainstBlockSets() {
        var random = SeededGenerator(seed: 5)
        func randomSet() -> BlockRunSet {
            BlockRunSet((0..<(random.next() % 12)).map { _ in BlockRun(start: random.next() % 200, count: 1 + random.next() % 20) })
        }
        func blocks(_ set: BlockRunSet) -> Set<UInt64> { Set(set.runs.flatMap { $0.start..<$0.end }) }
        for _ in 0..<2_000 {
            let a = randomSet(), b = randomSet()
            let range = BlockRun(start: random.next() % 100, count: random.next() % 150)
            let complement = BlockRunSet.complement(of: [a, b], within: range)
            XCTAssertEqual(blocks(complement), Set(range.start..<range.end).subtracting(blocks(a)).subtracting(blocks(b)))
            XCTAssertEqual(complement, BlockRunSet(complement.runs), "sorted, disjoint, not touching")
            let difference = a.subtracting(b)
            XCTAssertEqual(blocks(difference), blocks(a).subtracting(blocks(b)))
            XCTAssertEqual(difference, BlockRunSet(difference.runs), "sorted, disjoint, not touching")
        }
    }

    /// A change inside a free run, at its ends, and bridging two runs: each leaves maximal runs.
    func testRunsJoinAndSplitAtTheirEnds() throws {
        let harness = try TreeHarness(nodeSize: 4096)
        let tree = metadataTree(harness, blockCount: 1_000)
        let first = tree.superblock.firstAllocatableBlock
        var used = BlockRunSet([BlockRun(start: first, count: 100), BlockRun(start: first + 200, count: 100)])
        let free = { (range: BlockRun) -> [BlockRun] in
            var set = BlockRunSet([range])
            for run in used.runs(within: range) { set.remove(run) }
            return set.runs
        }
        try tree.replaceFreeSpace(over: [BlockRun(start: first, count: 1_000 - first)], free: free)
        XCTAssertEqual(try storedRuns(tree).byPosition, [BlockRun(start: first + 100, count: 100), BlockRun(start: first + 300, count: 1_000 - first - 300)])
        // The used run between them goes: one run, though only its blocks were recorded.
        used.remove(BlockRun(start: first + 200, count: 100))
        try tree.replaceFreeSpace(over: [BlockRun(start: first + 200, count: 100)], free: free)
        XCTAssertEqual(try storedRuns(tree).byPosition, [BlockRun(start: first + 100, count: 1_000 - first - 100)])
        // A block taken from the middle splits it; given back, it joins again.
        used.insert(BlockRun(start: first + 500, count: 1))
        try tree.replaceFreeSpace(over: [BlockRun(start: first + 500, count: 1)], free: free)
        XCTAssertEqual(try storedRuns(tree).byPosition.count, 2)
        used.remove(BlockRun(start: first + 500, count: 1))
        try tree.replaceFreeSpace(over: [BlockRun(start: first + 500, count: 1)], free: free)
        let stored = try storedRuns(tree)
        XCTAssertEqual(stored.byPosition, [BlockRun(start: first + 100, count: 1_000 - first - 100)])
        XCTAssertEqual(stored.bySize, stored.byPosition)
    }
}
