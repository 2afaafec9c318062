/// The files that have cached pages, in a ring that reclaim walks round robin. Listing and
/// unlisting are O(1) (the last member moves into the hole), so a volume of a million files
/// with a few cached pages each costs reclaim only the files it visits. Moving a member can
/// make one walk visit a file twice or skip it once; reclaim only needs every file visited
/// eventually. Guarded by PageCache.lock.
struct SpaceRing {
    private var members: [AddressSpace] = []
    private var slots: [ObjectIdentifier: Int] = [:]
    private var cursor = 0

    var count: Int { members.count }

    mutating func insert(_ space: AddressSpace) {
        let id = ObjectIdentifier(space)
        guard slots[id] == nil else { return }
        slots[id] = members.count
        members.append(space)
    }

    mutating func remove(_ space: AddressSpace) {
        guard let slot = slots.removeValue(forKey: ObjectIdentifier(space)) else { return }
        let last = members.removeLast()
        if slot < members.count {
            members[slot] = last
            slots[ObjectIdentifier(last)] = slot
        }
    }

    /// Up to `limit` members from the cursor on, wrapping; the cursor moves past them.
    mutating func next(_ limit: Int) -> [AddressSpace] {
        guard !members.isEmpty else { return [] }
        var batch: [AddressSpace] = []
        batch.reserveCapacity(min(limit, members.count))
        for _ in 0..<min(limit, members.count) {
            if cursor >= members.count { cursor = 0 }
            batch.append(members[cursor])
            cursor += 1
        }
        return batch
    }
}
