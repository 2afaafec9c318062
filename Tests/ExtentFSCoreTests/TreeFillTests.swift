import XCTest
@testable import ExtentFSCore

/// How full splits leave the tree (BTree.splitPoint): inserts in ascending order fill nodes to
/// about three quarters, inserts in random order keep the balanced split's fill, and neither
/// ever leaves a node under a quarter full (commitAndCheck asserts that and the item count).
final class TreeFillTests: XCTestCase {
    private func value(_ key: TreeKey, size: Int) -> [UInt8] {
        withUnsafeBytes(of: key.object &* 31 &+ key.offset) { Array($0) } + Array(repeating: UInt8(truncatingIfNeeded: key.offset), count: size - 8)
    }

    /// Keys appended at the tree's end (new inodes: object numbers rising), at every node size.
    func testAscendingInsertsFillNodesToThreeQuarters() throws {
        for nodeSize in [512, 1024, 4096, 16384] {
            let harness = try TreeHarness(nodeSize: nodeSize)
            let count = 200_000 / (16384 / nodeSize) / 4
            let keys = (0..<count).map { TreeKey(object: UInt64($0), kind: 1, offset: 0) }
            try harness.insertIntoEmptyTree(keys, commitEvery: 5_000) { value($0, size: 8 + Int($0.object % 40)) }
            let fill = try harness.tree.check().fill
            XCTAssertGreaterThan(fill, 0.70, "node size \(nodeSize)")
        }
    }

    /// What a create does to a volume's tree: each new file's items at the tree's end, and its
    /// directory entry appended to the directory's entries, which sit before other items (the
    /// directory's name index, under hashes, arriving in random order). Both runs fill their nodes.
    func testTwoRunsAndRandomInsertsTogether() throws {
        let harness = try TreeHarness(nodeSize: 4096)
        var random = SeededGenerator(seed: 9)
        let directories = 20, perDirectory = 1_000
        var items = 0
        for directory in 0..<directories {
            let object = UInt64(directory * (perDirectory + 1))
            for file in 0..<perDirectory {
                let inode = TreeKey(object: object + 1 + UInt64(file), kind: 1, offset: 0)
                let entry = TreeKey(object: object, kind: 2, offset: UInt64(file))
                let index = TreeKey(object: object, kind: 3, offset: random.next() >> 2)
                try harness.tree.insert(inode, value(inode, size: 96))
                try harness.tree.insert(entry, value(entry, size: 24))
                try harness.tree.insert(index, value(index, size: 32))
                items += 3
            }
            try harness.commitAndCheck(expectedItems: items)
        }
        XCTAssertGreaterThan(try harness.tree.check().fill, 0.68)
    }

    /// Random order: the balanced split's fill (about 0.69 for random inserts), not worse.
    func testRandomInsertsKeepTheBalancedFill() throws {
        let harness = try TreeHarness(nodeSize: 4096)
        var random = SeededGenerator(seed: 5)
        let keys = (0..<60_000).map { TreeKey(object: UInt64($0), kind: 1, offset: 0) }.shuffled(using: &random)
        try harness.insertIntoEmptyTree(keys, commitEvery: 10_000) { value($0, size: 40) }
        XCTAssertGreaterThan(try harness.tree.check().fill, 0.62)
    }

    /// Descending inserts are not a run this detects: balanced splits, half-full nodes, still
    /// none under a quarter.
    func testDescendingInsertsStayBalanced() throws {
        let harness = try TreeHarness(nodeSize: 1024)
        let keys = (0..<20_000).reversed().map { TreeKey(object: UInt64($0), kind: 1, offset: 0) }
        try harness.insertIntoEmptyTree(keys, commitEvery: 5_000) { value($0, size: 16) }
        XCTAssertGreaterThan(try harness.tree.check().fill, 0.45)
    }
}
