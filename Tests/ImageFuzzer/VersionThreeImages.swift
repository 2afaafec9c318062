import ExtentFSCore

/// Version 3 images made from version 4 ones, so that the whole-checkpoint decoders that mount
/// still runs on old images (before it converts them) stay fuzzed now that mkfs makes version 4:
/// each superblock copy's tree, read from the bytes (TreeLayout), is written as a whole
/// checkpoint (docs/FORMAT.md, "Whole checkpoints") into blocks at the end of the volume, which
/// the base images' few files never reach, and the copy becomes version 3. What the engine's own
/// crafting does in the tests (ImageCrafting.writeVersion3), without its encoders.
enum VersionThreeImages {
    /// nil when a copy's tree is not intact or its checkpoint does not fit.
    static func convert(_ original: [UInt8]) -> [UInt8]? {
        var image = original
        let layout = ImageLayout(image)
        guard let blockSize = layout.superblocks.first?.blockSize else { return nil }
        // The next free block counted down from the end; the tree's nodes stay where they are
        // (free space once no superblock reaches them).
        var next = image.count / blockSize
        for superblock in layout.superblocks {
            guard superblock.version >= ImageLayout.treeVersion, let payload = payload(image, superblock.tree,
                                                                                         flagsAndBirthTime: superblock.version >= ImageLayout.labelVersion,
                                                                                         directoryTotals: superblock.version >= ImageLayout.nameIndexVersion) else {
                return nil
            }
            let payloadBlocks = (payload.count + blockSize - 1) / blockSize
            next -= payloadBlocks
            var index = Array("EXINDX01".utf8)
            append(1, 8, to: &index)
            append(UInt64(next), 8, to: &index)
            append(UInt64(payloadBlocks), 8, to: &index)
            let payloadBlock = next
            next -= 1
            guard index.count <= blockSize, next * blockSize > 64 << 10 else { return nil }
            image.replaceSubrange(payloadBlock * blockSize..<payloadBlock * blockSize + payload.count, with: payload)
            image.replaceSubrange(next * blockSize..<next * blockSize + index.count, with: index)
            let at = superblock.offset
            ImageLayout.write(3, width: 4, into: &image, at: at + ImageLayout.Field.version.offset)
            for (field, value) in [(ImageLayout.Field.indexBlock, UInt64(next)), (.indexBlockCount, 1), (.indexBytes, UInt64(index.count)),
                                   (.indexChecksum, UInt64(CRC32C.checksum(index))), (.payloadBytes, UInt64(payload.count)),
                                   (.payloadChecksum, UInt64(CRC32C.checksum(payload)))] {
                ImageLayout.write(value, width: field.width, into: &image, at: at + field.offset)
            }
            ImageLayout.sealSuperblock(&image, at: at)
        }
        return image
    }

    /// "EXCKPT01", the next inode number, the inodes' images in order, the reference counts
    /// (neighbouring runs of one count joined, as loading the tree joins them). Images of
    /// version 5 on lose their btime and flags: a whole checkpoint has the layout before.
    private static func payload(_ image: [UInt8], _ tree: TreeLayout, flagsAndBirthTime: Bool, directoryTotals: Bool) -> [UInt8]? {
        guard let next = tree.items.first(where: { $0.key.object == 0 && $0.key.kind == TreeLayout.nextInodeKind }),
              next.value.count == 8 else { return nil }
        var payload = Array("EXCKPT01".utf8) + image[next.value]
        let inodes = tree.inodeImages
        append(UInt64(inodes.count), 8, to: &payload)
        for inode in inodes {
            var bytes = inode.pieces.flatMap { image[$0] }
            if flagsAndBirthTime {
                // docs/FORMAT.md, "Inode": btime at bytes 76-87, the flags at 104-107.
                guard bytes.count >= 108 else { return nil }
                bytes = Array(bytes[0..<76] + bytes[88..<104] + bytes[108...])
            }
            // Version 7: a directory's image ends with its entry totals, which version 3 has not.
            if directoryTotals, ImageLayout.read(bytes, 8, 4) & 0o170000 == 0o040000 {
                guard bytes.count >= 16 else { return nil }
                bytes.removeLast(16)
            }
            payload += bytes
        }
        var runs: [(start: UInt64, blocks: UInt64, count: UInt64)] = []
        for item in tree.referenceCountItems {
            guard item.value.count == 12 else { return nil }
            let run = (start: item.key.offset, blocks: ImageLayout.read(image, item.value.lowerBound, 8),
                       count: ImageLayout.read(image, item.value.lowerBound + 8, 4))
            if let last = runs.last, last.start &+ last.blocks == run.start, last.count == run.count {
                runs[runs.count - 1].blocks += run.blocks
            } else {
                runs.append(run)
            }
        }
        append(UInt64(runs.count), 8, to: &payload)
        for run in runs {
            append(run.start, 8, to: &payload)
            append(run.blocks, 8, to: &payload)
            append(run.count, 4, to: &payload)
        }
        return payload
    }

    private static func append(_ value: UInt64, _ width: Int, to bytes: inout [UInt8]) {
        for index in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }
}
