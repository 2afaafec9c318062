import XCTest
@testable import ExtentFS

/// The page index against a model (a dictionary and a set): random inserts, removals, dirty
/// marks and lookups, with page numbers clustered (as a file's are) and scattered (as a sparse
/// file's are), so that the hash table grows, probes across its end and shifts entries back.
final class PageIndexTests: XCTestCase {
    private final class Box {
        let key: UInt64
        init(_ key: UInt64) { self.key = key }
    }

    func testChunkTableMatchesADictionary() {
        for seed: UInt64 in 1...4 {
            var random = SeededGenerator(seed: seed)
            var table = ChunkTable<Box>()
            var model: [UInt64: Box] = [:]
            let span: UInt64 = seed % 2 == 0 ? 300 : UInt64.max
            for step in 0..<20_000 {
                let key = UInt64.random(in: 0...span, using: &random)
                switch random.next() % 3 {
                case 0, 1 where model.count < 2_000:
                    let box = Box(key)
                    table.set(box, for: key)
                    model[key] = box
                default:
                    table.remove(key)
                    model[key] = nil
                }
                XCTAssertEqual(table.count, model.count, "seed \(seed) step \(step)")
                if step % 97 == 0 {
                    for (key, box) in model { XCTAssertTrue(table[key] === box, "seed \(seed) step \(step) key \(key)") }
                    var seen = 0
                    table.forEach { key, box in
                        XCTAssertTrue(model[key] === box)
                        seen += 1
                    }
                    XCTAssertEqual(seen, model.count)
                }
            }
        }
    }

    func testDirtyMarksFollowPages() {
        var random = SeededGenerator(seed: 7)
        var index = PageIndex()
        var present = Set<UInt64>()
        var dirty = Set<UInt64>()
        let memory = UnsafeMutableRawPointer.allocate(byteCount: Page.size, alignment: Page.size)
        defer { memory.deallocate() }
        for step in 0..<20_000 {
            let page = UInt64.random(in: 0..<2_000, using: &random) * (step % 5 == 0 ? 1_000_003 : 1)
            switch random.next() % 4 {
            case 0:
                index.insert(Page(index: page, memory: memory))
                present.insert(page)
            case 1:
                index.remove(page)
                present.remove(page)
                dirty.remove(page)
            case 2:
                index.setDirty(page, true)
                if present.contains(page) { dirty.insert(page) }
            default:
                index.setDirty(page, false)
                dirty.remove(page)
            }
            XCTAssertEqual(index.count, present.count, "step \(step)")
            XCTAssertEqual(index.dirtyCount, dirty.count, "step \(step)")
            if step % 101 == 0 { XCTAssertEqual(index.dirtyIndices(), dirty.sorted(), "step \(step)") }
            XCTAssertEqual(index[page] != nil, present.contains(page), "step \(step)")
        }
    }
}
