/// Clean nodes by address, within a byte budget, shared by every tree of a volume (addresses are
/// unique across trees, and each node records its owner).
///
/// Eviction is CLOCK with a few chances a node (as XFS's buffer LRU references): the hand takes
/// one from each node it passes and evicts the first clean node found with none left. A leaf
/// enters with none and a hit gives it one; an internal node enters with one and a hit gives it
/// three, as every lookup below it passes through it: leaves read by random lookups (each read
/// once, each a new node) would otherwise push out the internal nodes above them, which cold
/// stats on a 1,000,000-file volume then read again (1,721 times in 10,000 stats; 245 now). So a
/// long scan pushes out its own leaves before the nodes that were being used, and internal
/// nodes last.
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
        var chances: UInt8
    }

    private static let chancesOfAHitLeaf: UInt8 = 1
    private static let chancesOfANewInternalNode: UInt8 = 1
    private static let chancesOfAHitInternalNode: UInt8 = 3

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
        guard let slot = slots[index] else { return nil }
        let chances = slot.node.isLeaf ? Self.chancesOfAHitLeaf : Self.chancesOfAHitInternalNode
        if slot.chances < chances { slots[index]?.chances = chances }
        return slot.node
    }

    /// `node` is clean and is what the device holds at `address` now.
    func insert(_ node: TreeNode, at address: UInt64, charge: Int) {
        remove(address)
        let slot = Slot(address: address, node: node, charge: charge,
                        chances: node.isLeaf ? 0 : Self.chancesOfANewInternalNode)
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
        // Every sweep takes a chance from every node, and none has more than three, so this ends
        // while anything is left to evict.
        while cleanBytes > 0, cleanBytes + pinnedBytes > budgetBytes {
            if hand >= slots.count { hand = 0 }
            if let slot = slots[hand] {
                if slot.chances > 0 {
                    slots[hand]?.chances -= 1
                } else {
                    remove(slot.address)
                    evictions += 1
                }
            }
            hand += 1
        }
    }
}
