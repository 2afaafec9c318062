/// Clean nodes by address, within a byte budget, shared by every tree of a volume (addresses are
/// unique across trees, and each node records its owner).
///
/// Eviction is CLOCK (second chance): a hit sets a node's reference bit, the hand clears bits and
/// evicts the first clean node found without one. A node enters without its bit, so a long scan
/// pushes out its own nodes before the ones that were being used.
///
/// Dirty nodes are not in here: the tree holds them (they have no address before commit) and
/// reports them as `pinnedBytes`, which count against the same budget, so clean nodes make room
/// for them. When pinned bytes alone pass the budget the cache holds nothing; the caller should
/// commit well before then (`pinnedBytes > budgetBytes / 2`, say).
///
/// Every node is charged `nodeSize` bytes, what it takes on disk. The decoded form is close to
/// that for typical items and up to about three times it for leaves full of tiny values.
///
/// Not thread-safe: used under the same lock as the trees.
public final class NodeCache {
    public var budgetBytes: Int { didSet { evictToBudget() } }
    public private(set) var cleanBytes = 0
    public internal(set) var pinnedBytes = 0
    public private(set) var hits = 0
    public private(set) var misses = 0
    public private(set) var evictions = 0
    public var cleanNodeCount: Int { slotOfAddress.count }

    private struct Slot {
        let address: UInt64
        let node: TreeNode
        let charge: Int
        var referenced: Bool
    }

    private var slots: [Slot?] = []
    private var vacantSlots: [Int] = []
    private var slotOfAddress: [UInt64: Int] = [:]
    private var hand = 0

    public init(budgetBytes: Int) {
        self.budgetBytes = budgetBytes
    }

    func node(at address: UInt64) -> TreeNode? {
        guard let index = slotOfAddress[address] else {
            misses += 1
            return nil
        }
        hits += 1
        slots[index]?.referenced = true
        return slots[index]?.node
    }

    /// `node` is clean and is what the device holds at `address` now.
    func insert(_ node: TreeNode, at address: UInt64, charge: Int) {
        remove(address)
        let slot = Slot(address: address, node: node, charge: charge, referenced: false)
        if let index = vacantSlots.popLast() {
            slots[index] = slot
            slotOfAddress[address] = index
        } else {
            slotOfAddress[address] = slots.count
            slots.append(slot)
        }
        cleanBytes += charge
        evictToBudget()
    }

    /// The node at `address` is no longer what the tree uses (it was copied or deleted), or
    /// (a reader of another writer's tree) the block may be reused for something else.
    public func remove(_ address: UInt64) {
        guard let index = slotOfAddress.removeValue(forKey: address), let slot = slots[index] else { return }
        cleanBytes -= slot.charge
        slots[index] = nil
        vacantSlots.append(index)
    }

    /// Drops every clean node (a remount of the same cache, or a test's cold start).
    public func removeAll() {
        slots.removeAll()
        vacantSlots.removeAll()
        slotOfAddress.removeAll()
        cleanBytes = 0
        hand = 0
    }

    private func evictToBudget() {
        // Two sweeps clear every reference bit, so this ends while anything is left to evict.
        while cleanBytes > 0, cleanBytes + pinnedBytes > budgetBytes {
            if hand >= slots.count { hand = 0 }
            if let slot = slots[hand] {
                if slot.referenced {
                    slots[hand]?.referenced = false
                } else {
                    remove(slot.address)
                    evictions += 1
                }
            }
            hand += 1
        }
    }
}
