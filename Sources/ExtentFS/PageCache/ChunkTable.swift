/// A hash table from chunk number to chunk, for PageIndex: open addressing with linear probing
/// and a multiplicative (Fibonacci) hash. Swift's Dictionary hashes every UInt64 key with
/// SipHash, which showed in profiles of 4 KiB random writes as the largest cost of a page
/// lookup; chunk numbers need no protection against chosen collisions (a file's page numbers
/// come from offsets the kernel has already bounded, and a collision costs only a longer probe).
/// Deletion shifts the following entries back, so there are no tombstones.
struct ChunkTable<Value: AnyObject> {
    private var keys: [UInt64] = []
    private var values: [Value?] = []
    private var shift = 64
    private(set) var count = 0

    private var capacity: Int { keys.count }

    private func slot(for key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    subscript(key: UInt64) -> Value? {
        guard count > 0 else { return nil }
        let mask = capacity - 1
        var index = slot(for: key)
        while let value = values[index] {
            if keys[index] == key { return value }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Inserts or replaces.
    mutating func set(_ value: Value, for key: UInt64) {
        if (count + 1) * 4 > capacity * 3 { grow() }
        let mask = capacity - 1
        var index = slot(for: key)
        while values[index] != nil {
            if keys[index] == key {
                values[index] = value
                return
            }
            index = (index + 1) & mask
        }
        keys[index] = key
        values[index] = value
        count += 1
    }

    mutating func remove(_ key: UInt64) {
        guard count > 0 else { return }
        let mask = capacity - 1
        var hole = slot(for: key)
        while true {
            guard values[hole] != nil else { return }
            if keys[hole] == key { break }
            hole = (hole + 1) & mask
        }
        values[hole] = nil
        count -= 1
        // Moves back every entry of the cluster after the hole that may sit in it: one whose
        // home slot is not cyclically within (hole, index].
        var index = (hole + 1) & mask
        while values[index] != nil {
            let home = slot(for: keys[index])
            let fitsInHole = hole <= index ? (home <= hole || home > index) : (home <= hole && home > index)
            if fitsInHole {
                keys[hole] = keys[index]
                values[hole] = values[index]
                values[index] = nil
                hole = index
            }
            index = (index + 1) & mask
        }
    }

    var allValues: [Value] { values.compactMap { $0 } }

    /// Every key with its value, in no particular order.
    func forEach(_ body: (UInt64, Value) -> Void) {
        for index in 0..<capacity {
            if let value = values[index] { body(keys[index], value) }
        }
    }

    private mutating func grow() {
        let newCapacity = max(16, capacity * 2)
        let oldKeys = keys
        let oldValues = values
        keys = [UInt64](repeating: 0, count: newCapacity)
        values = [Value?](repeating: nil, count: newCapacity)
        shift = 64 - newCapacity.trailingZeroBitCount
        count = 0
        for index in 0..<oldKeys.count {
            if let value = oldValues[index] { set(value, for: oldKeys[index]) }
        }
    }
}
