import ExtentFSExercise

/// One seeded damage to a whole image: blind ones (bit flips, zeroed ranges, truncation) that
/// the checksums should catch, and crafted ones that change a value and recompute every checksum
/// over it, so that only the value is hostile and the decoders' and checker's range checks are
/// what stands between it and the engine.
struct Mutator {
    enum Kind: String, CaseIterable {
        case bitFlips, zeroedRange, truncation
        case superblockField, payloadValue, payloadBytes, payloadLength, indexRun, recordValue, recordHeader
        // Version 4: the metadata tree's nodes (TreeMutations.swift), each resealed.
        case nodeHeader, slotKey, childPointer, valueSlot, inodeField, itemValue, leafItems
        case several
    }

    /// How often each kind comes up: crafted ones reach the most code.
    static let weights: [(Kind, Int)] = [
        (.bitFlips, 2), (.zeroedRange, 2), (.truncation, 1), (.superblockField, 3), (.payloadValue, 8),
        (.payloadBytes, 3), (.payloadLength, 1), (.indexRun, 1), (.recordValue, 5), (.recordHeader, 2), (.several, 2),
        (.nodeHeader, 3), (.slotKey, 3), (.childPointer, 3), (.valueSlot, 2), (.inodeField, 8), (.itemValue, 4), (.leafItems, 5),
    ]

    /// Values at the edges of every range a field could be checked against.
    static let interesting: [UInt64] = [
        0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 0x200, 0xFFF, 0x1000, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0x8000_0000,
        0xFFFF_FFFE, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 47, (1 << 47) + 1, 1 << 48, 1 << 50, (1 << 50) + 1, 1 << 52,
        1 << 62, (1 << 62) - 1, UInt64(Int64.max), 1 << 63, UInt64.max - 1, UInt64.max,
    ]

    var random: SeededRandom

    init(seed: UInt64) {
        random = SeededRandom(seed: seed)
    }

    /// Damages `image` in place; returns what it did, for the failure report.
    mutating func mutate(_ image: inout [UInt8]) -> String {
        let layout = ImageLayout(image)
        // Which copy mount would use: damage to the other one is noticed only by fsck.
        return "(newest: superblock \(layout.newest.map { String($0.slot) } ?? "none")) " + damage(&image, layout)
    }

    private mutating func damage(_ image: inout [UInt8], _ layout: ImageLayout) -> String {
        let kind = pickKind()
        if kind == .several {
            var done: [String] = []
            for _ in 0..<(2 + random.below(2)) {
                let next = Mutator.weights.filter { $0.0 != .several && $0.0 != .truncation }
                done.append(apply(next[random.below(next.count)].0, &image, ImageLayout(image)))
            }
            return done.joined(separator: "; ")
        }
        return apply(kind, &image, layout)
    }

    private mutating func pickKind() -> Kind {
        let total = Mutator.weights.reduce(0) { $0 + $1.1 }
        var pick = random.below(total)
        for (kind, weight) in Mutator.weights {
            if pick < weight { return kind }
            pick -= weight
        }
        return .bitFlips
    }

    mutating func value() -> UInt64 {
        switch random.below(4) {
        case 0: return UInt64(random.below(256))
        case 1: return random.next()
        default:
            let base = Mutator.interesting[random.below(Mutator.interesting.count)]
            return random.chance(0.7) ? base : base &+ UInt64(bitPattern: Int64(random.below(5) - 2))
        }
    }

    /// A superblock field's new value: for the tree's root, mostly one that another check than
    /// the checksum must catch (a node that is not the root, a generation after the sequence, a
    /// level off by one).
    private mutating func superblockValue(_ field: ImageLayout.Field, _ superblock: ImageLayout.Superblock, _ layout: ImageLayout) -> UInt64 {
        let nodes = superblock.tree.nodes
        switch field.name {
        case ImageLayout.Field.rootAddress.name where !nodes.isEmpty && random.chance(0.6):
            return nodes[random.below(nodes.count)].address
        case ImageLayout.Field.rootGeneration.name where random.chance(0.6):
            return superblock.sequence &+ UInt64(random.below(3)) &- 1
        case ImageLayout.Field.rootLevel.name where !nodes.isEmpty && random.chance(0.6):
            return UInt64(nodes[0].level) &+ UInt64(random.below(3)) &- 1
        default:
            return value()
        }
    }

    mutating func width() -> Int { [1, 2, 4, 8, 8][random.below(5)] }

    /// A superblock to change: the newest copy mostly (what mount uses), sometimes the other.
    mutating func superblock(_ layout: ImageLayout) -> ImageLayout.Superblock? {
        guard let newest = layout.newest else { return nil }
        if random.chance(0.25), let other = layout.superblocks.first(where: { $0.slot != newest.slot }) { return other }
        return newest
    }

    private mutating func apply(_ kind: Kind, _ image: inout [UInt8], _ layout: ImageLayout) -> String {
        switch kind {
        case .bitFlips:
            let ranges = layout.metadataRanges
            var flipped: [Int] = []
            for _ in 0..<(1 + random.below(8)) {
                let range = ranges[random.below(ranges.count)]
                let offset = range.lowerBound + random.below(range.count)
                guard offset < image.count else { continue }
                image[offset] ^= 1 << UInt8(random.below(8))
                flipped.append(offset)
            }
            return "bit flips at \(flipped)"
        case .zeroedRange:
            let ranges = layout.metadataRanges
            let range = ranges[random.below(ranges.count)]
            let start = random.chance(0.5) ? range.lowerBound / 512 * 512 : range.lowerBound + random.below(range.count)
            let length = random.chance(0.5) ? 512 * (1 + random.below(8)) : 1 + random.below(600)
            let end = min(image.count, start + length)
            guard start < end else { return "nothing zeroed" }
            image.replaceSubrange(start..<end, with: repeatElement(0, count: end - start))
            return "zeroed \(start)..<\(end)"
        case .truncation:
            let ranges = layout.metadataRanges
            let cut = random.chance(0.5) ? random.below(image.count) : min(image.count, ranges[random.below(ranges.count)].upperBound)
            image.removeSubrange(cut...)
            return "truncated to \(cut) bytes"
        case .superblockField:
            guard let superblock = superblock(layout) else { return "no superblock to change" }
            let fields = ImageLayout.Field.all(version: superblock.version)
            let field = fields[random.below(fields.count)]
            let newValue = superblockValue(field, superblock, layout)
            ImageLayout.write(newValue, width: field.width, into: &image, at: superblock.offset + field.offset)
            ImageLayout.sealSuperblock(&image, at: superblock.offset)
            return "superblock \(superblock.slot) \(field) = \(newValue)"
        case .payloadValue, .payloadBytes:
            guard let superblock = superblock(layout), superblock.payloadBytes > 0, !superblock.payloadPieces.isEmpty else {
                return "no checkpoint payload to change"
            }
            var changed: [String] = []
            for _ in 0..<(kind == .payloadValue ? 1 + random.below(2) : 1 + random.below(6)) {
                let position = random.below(superblock.payloadBytes)
                guard let offset = imageOffset(ofPayloadByte: position, superblock) else { continue }
                if kind == .payloadValue {
                    let width = width()
                    let newValue = value()
                    for index in 0..<width {
                        if let byte = imageOffset(ofPayloadByte: position + index, superblock) {
                            image[byte] = UInt8(truncatingIfNeeded: newValue >> (8 * UInt64(index)))
                        }
                    }
                    changed.append("payload byte \(position) = \(newValue) (\(width) bytes)")
                } else {
                    image[offset] = UInt8(truncatingIfNeeded: random.next())
                    changed.append("payload byte \(position)")
                }
            }
            ImageLayout.sealPayload(&image, of: superblock)
            return "superblock \(superblock.slot) checkpoint: " + changed.joined(separator: ", ")
        case .payloadLength:
            guard let superblock = superblock(layout) else { return "no superblock to change" }
            let length = UInt64(max(0, superblock.payloadBytes + random.below(64) - 48))
            ImageLayout.write(length, width: 8, into: &image, at: superblock.offset + ImageLayout.Field.payloadBytes.offset)
            var shortened = superblock
            var remaining = Int(length)
            shortened.payloadPieces = superblock.payloadPieces.compactMap { piece in
                guard remaining > 0 else { return nil }
                defer { remaining -= min(remaining, piece.count) }
                return piece.lowerBound..<piece.lowerBound + min(remaining, piece.count)
            }
            ImageLayout.sealPayload(&image, of: shortened)
            return "superblock \(superblock.slot) payload length = \(length) (was \(superblock.payloadBytes))"
        case .indexRun:
            guard let superblock = superblock(layout), let range = superblock.indexRange, range.count > 8 else { return "no index to change" }
            let position = 8 + random.below((range.count - 8) / 8) * 8
            let newValue = value()
            ImageLayout.write(newValue, width: 8, into: &image, at: range.lowerBound + position)
            ImageLayout.sealIndex(&image, of: superblock)
            return "superblock \(superblock.slot) index word at \(position) = \(newValue)"
        case .recordValue, .recordHeader:
            guard let superblock = superblock(layout), !superblock.records.isEmpty else { return "no log record to change" }
            let record = superblock.records[random.below(superblock.records.count)]
            let description: String
            if kind == .recordValue, record.payloadBytes > 0 {
                let position = random.below(record.payloadBytes)
                let width = min(width(), record.payloadBytes - position)
                let newValue = value()
                ImageLayout.write(newValue, width: width, into: &image, at: record.headerOffset + ImageLayout.logHeaderSize + position)
                description = "payload byte \(position) = \(newValue) (\(width) bytes)"
            } else {
                let (offset, width, name) = [(8, 8, "sequence"), (16, 4, "kind"), (20, 4, "length")][random.below(3)]
                let newValue = value()
                ImageLayout.write(newValue, width: width, into: &image, at: record.headerOffset + offset)
                description = "header \(name) = \(newValue)"
            }
            ImageLayout.sealRecord(&image, record)
            return "log record \(record.sequence) (after superblock \(superblock.slot)'s tail): \(description)"
        case .nodeHeader, .slotKey, .childPointer, .valueSlot, .inodeField, .itemValue, .leafItems:
            guard let superblock = superblock(layout), !superblock.tree.nodes.isEmpty else {
                // An image of version 3 or older: its checkpoint payload instead.
                return apply(random.chance(0.5) ? .payloadValue : .payloadBytes, &image, layout)
            }
            return "superblock \(superblock.slot) tree: " + mutateTree(kind, &image, superblock.tree)
        case .several:
            return "several"
        }
    }

    private func imageOffset(ofPayloadByte position: Int, _ superblock: ImageLayout.Superblock) -> Int? {
        var skipped = 0
        for piece in superblock.payloadPieces {
            if position < skipped + piece.count { return piece.lowerBound + position - skipped }
            skipped += piece.count
        }
        return nil
    }
}
