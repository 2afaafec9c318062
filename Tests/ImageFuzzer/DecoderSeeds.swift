import Foundation

/// Seeds for the decoder fuzzer (Tests/DecoderFuzzer): every structure of the base images, each
/// as DecoderFuzzing takes it (byte 0 the structure: 0 superblock, 1 log record payload,
/// 2 checkpoint payload, 3 checkpoint index, 4 one tree node, 5 a whole tree, its nodes root
/// first; byte 1 the block size as log2 - 9; then the bytes). Version 4 images give tree seeds,
/// version 3 ones checkpoint payloads and indexes.
enum DecoderSeeds {
    static func write(into directory: String, images: [BaseImages.Image]) throws -> Int {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written = 0
        func save(_ name: String, _ structure: UInt8, _ blockSize: Int, _ body: [UInt8]) throws {
            let input = [structure, UInt8(blockSize.trailingZeroBitCount - 9)] + body
            try Data(input).write(to: URL(fileURLWithPath: directory + "/seed-" + name))
            written += 1
        }
        for image in images {
            let layout = ImageLayout(image.bytes)
            guard let newest = layout.newest else { continue }
            let stem = image.name.replacingOccurrences(of: ".img", with: "")
            try save("superblock-\(stem)", 0, newest.blockSize, Array(image.bytes[newest.offset..<newest.offset + ImageLayout.superblockSize]))
            if newest.payloadBytes > 0 {
                var payload: [UInt8] = []
                for piece in newest.payloadPieces { payload += image.bytes[piece] }
                try save("checkpoint-\(stem)", 2, newest.blockSize, payload)
            }
            if let index = newest.indexRange { try save("index-\(stem)", 3, newest.blockSize, Array(image.bytes[index])) }
            let nodes = newest.tree.nodes
            for (number, node) in nodes.prefix(4).enumerated() {
                try save("node-\(stem)-\(number)", 4, newest.blockSize, Array(image.bytes[node.range]))
            }
            if !nodes.isEmpty {
                // Root first, as DecoderFuzzing takes it; the fuzzer's inputs stay within 8 KiB.
                let tree = nodes.prefix(max(1, 8192 / newest.blockSize)).flatMap { image.bytes[$0.range] }
                try save("tree-\(stem)", 5, newest.blockSize, tree)
            }
            for (number, record) in newest.records.enumerated() {
                let start = record.headerOffset + ImageLayout.logHeaderSize
                try save("record-\(stem)-\(number)", 1, newest.blockSize, Array(image.bytes[start..<start + record.payloadBytes]))
            }
        }
        return written
    }
}
