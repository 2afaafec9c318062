import SystemPackage
import XCTest
@testable import ExtentFSCore

/// Damaged and hostile nodes: every failure must be a thrown TreeError, never a trap. Damage either
/// leaves the checksum wrong (what a bad sector does) or re-seals it (a hostile image, or a bug that
/// wrote well-formed nonsense), which exercises every structural check behind the checksum.
final class TreeCorruptionTests: XCTestCase {
    func testDamagedNodesThrowAndNeverTrap() throws {
        for nodeSize in [1024, 4096] {
            try runDamageCases(nodeSize: nodeSize, cases: nodeSize == 1024 ? 2000 : 600)
        }
    }

    private func runDamageCases(nodeSize: Int, cases: Int) throws {
        let harness = try TreeHarness(nodeSize: nodeSize)
        var random = SeededGenerator(seed: UInt64(nodeSize))
        var model = TreeModel()
        // Two commits, so that nodes of two generations exist (stale-node checks have something to see).
        for round in 0..<2 {
            for _ in 0..<(nodeSize == 1024 ? 400 : 1200) {
                let key = randomKey(&random, objects: 32), value = randomValue(&random, maxSize: 60)
                try harness.tree.insert(key, value)
                model.insert(key, value)
            }
            try harness.commitAndCheck(expectedItems: model.count)
            if round == 0 { for key in model.keys.prefix(100) { _ = model.remove(key); try harness.tree.remove(key) } }
        }
        let root = try XCTUnwrap(harness.tree.committedRoot)
        let pristine = harness.device.nodes
        let addresses = try harness.tree.check().storedAddresses
        let probes = (0..<20).map { _ in model.keys[Int(random.next() % UInt64(model.count))] } + (0..<5).map { _ in randomKey(&random) }

        var thrown = 0, detectedBadChecksum = 0
        for caseNumber in 0..<cases {
            let device = MemoryNodeDevice(nodeSize: nodeSize)
            device.nodes = pristine
            let target = addresses[Int(random.next() % UInt64(addresses.count))]
            let resealed = damage(&device.nodes, target: target, addresses: addresses, nodeSize: nodeSize, random: &random)
            let tree = try BTree(root: root, owner: harness.owner, device: device, allocator: TestNodeAllocator(),
                                 cache: NodeCache(budgetBytes: random.next() % 4 == 0 ? 2 * nodeSize : 1 << 20))
            var failures = 0
            func attempt(_ body: () throws -> Void) {
                do { try body() } catch is TreeError {
                    failures += 1
                } catch Errno.ioError {
                    failures += 1  // the device's own error for a node it never had, passed on
                } catch {
                    XCTFail("case \(caseNumber): not a TreeError: \(error)")
                }
            }
            for key in probes {
                attempt {
                    let value = try tree.lookup(key)
                    // An unsealed flip cannot go unnoticed: what comes back is the truth.
                    if !resealed { XCTAssertEqual(value, model.values[key], "case \(caseNumber)") }
                }
                attempt { _ = try tree.lastItem(atOrBelow: key) }
            }
            attempt {
                let items = try tree.items()
                if !resealed { XCTAssertEqual(items, model.allItems, "case \(caseNumber)") }
            }
            attempt { _ = try tree.check() }
            // Changing and committing a damaged tree fails cleanly too (or works, if the damage is
            // off the paths it touches).
            attempt {
                for key in probes.prefix(10) {
                    try tree.insert(key, [UInt8](repeating: 9, count: Int(random.next() % 200)))
                    try tree.remove(probes[Int(random.next() % UInt64(probes.count))])
                }
            }
            attempt { try tree.commit(generation: harness.generation + 1) }
            if failures > 0 { thrown += 1 }
            if !resealed { detectedBadChecksum += 1 }
            if testRun?.failureCount ?? 0 > 0 { return }
        }
        // Sanity: the damage is mostly found (some resealed changes are undetectable by design,
        // such as a changed value byte).
        XCTAssertGreaterThan(thrown, cases / 2, "node size \(nodeSize)")
        XCTAssertGreaterThan(detectedBadChecksum, 0)
    }

    /// Damages the node at `target`; returns whether the checksum was re-sealed.
    private func damage(_ nodes: inout [UInt64: [UInt8]], target: UInt64, addresses: [UInt64], nodeSize: Int,
                        random: inout SeededGenerator) -> Bool {
        guard var bytes = nodes[target] else { return false }
        func reseal(_ bytes: inout [UInt8]) {
            let sum = NodeCodec.checksum(bytes)
            for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: sum >> (index * 8)) }
        }
        func poke(_ bytes: inout [UInt8], at offset: Int, width: Int, value: UInt64) {
            for index in 0..<width where offset + index < bytes.count {
                bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
            }
        }
        // Values that hit the edges: zero, small, one past a bound, all ones.
        func hostileNumber() -> UInt64 {
            let choices: [UInt64] = [0, 1, 2, 3, 0xFF, 0x100, UInt64(nodeSize - 1), UInt64(nodeSize), UInt64(nodeSize + 1),
                                     0xFFFF, 0x1_0000, 0xFFFF_FFFF, .max, .max - 1, random.next()]
            return choices[Int(random.next() % UInt64(choices.count))]
        }
        let count = Int(bytes[10]) | Int(bytes[11]) << 8
        let slotSize = bytes[9] == 0 ? NodeLayout.leafSlotSize : NodeLayout.internalSlotSize
        switch random.next() % 9 {
        case 0:  // bit rot
            for _ in 0..<(1 + random.next() % 4) { bytes[Int(random.next() % UInt64(nodeSize))] ^= UInt8(1 + random.next() % 255) }
            nodes[target] = bytes
            return false
        case 1:  // truncated or extended read
            nodes[target] = random.next() % 2 == 0 ? Array(bytes.prefix(Int(random.next() % UInt64(nodeSize)))) : bytes + [0]
            return false
        case 2:  // two nodes swapped (misdirected writes)
            let other = addresses[Int(random.next() % UInt64(addresses.count))]
            nodes[target] = nodes[other]
            nodes[other] = bytes
            return false
        case 3:  // a node copied elsewhere, its own address field made to match (checksum re-sealed)
            var other = nodes[addresses[Int(random.next() % UInt64(addresses.count))]] ?? bytes
            poke(&other, at: 24, width: 8, value: target)
            reseal(&other)
            nodes[target] = other
        case 4:  // a header field
            let fields: [(Int, Int)] = [(8, 1), (9, 1), (10, 2), (12, 4), (16, 8), (24, 8)]
            let (offset, width) = fields[Int(random.next() % UInt64(fields.count))]
            poke(&bytes, at: offset, width: width, value: hostileNumber())
            reseal(&bytes)
            nodes[target] = bytes
        case 5, 6:  // a field of a slot: key parts, value offset and length, child address and generation
            let slot = 32 + Int(random.next() % UInt64(max(count, 1))) * slotSize
            let fields: [(Int, Int)] = slotSize == NodeLayout.leafSlotSize
                ? [(0, 8), (8, 1), (9, 8), (17, 4), (21, 2)] : [(0, 8), (8, 1), (9, 8), (17, 8), (25, 8)]
            let (offset, width) = fields[Int(random.next() % UInt64(fields.count))]
            poke(&bytes, at: slot + offset, width: width, value: hostileNumber())
            reseal(&bytes)
            nodes[target] = bytes
        case 7:  // random bytes anywhere, re-sealed
            for _ in 0..<(1 + random.next() % 8) { bytes[8 + Int(random.next() % UInt64(nodeSize - 8))] = UInt8(truncatingIfNeeded: random.next()) }
            reseal(&bytes)
            nodes[target] = bytes
        default:  // gone: zeroes, or never written
            if random.next() % 2 == 0 { nodes[target] = [UInt8](repeating: 0, count: nodeSize) } else { nodes[target] = nil }
            return false
        }
        return true
    }
}
