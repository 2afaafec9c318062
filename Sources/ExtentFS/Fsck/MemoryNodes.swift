import ExtentFSCore
import SystemPackage

/// Tree nodes held in memory, for the decoder fuzzer (DecoderFuzzing): the nodes an input holds,
/// read as TreeReader reads an image's (an address outside the volume's data blocks is refused
/// before anything is read), and fresh addresses above them for a commit. Each node's checksum is
/// resealed when it goes in, since a fuzzer cannot forge checksums and every other check comes
/// after that one.
final class MemoryNodes: NodeDevice, NodeAllocator {
    let nodeSize: Int
    let dataBlocks: Range<UInt64>
    private(set) var nodes: [UInt64: [UInt8]] = [:]
    private var nextAddress: UInt64

    init(nodeSize: Int, dataBlocks: Range<UInt64>) {
        self.nodeSize = nodeSize
        self.dataBlocks = dataBlocks
        nextAddress = dataBlocks.lowerBound
    }

    /// `bytes` cut or padded with zeroes to a node, its checksum resealed, stored at the address
    /// its own header names (the first node to name one keeps it). Returns that address.
    @discardableResult
    func add(_ bytes: [UInt8]) -> UInt64 {
        var node = Array(bytes.prefix(nodeSize))
        node += [UInt8](repeating: 0, count: nodeSize - node.count)
        let checksum = CRC32C.checksum(Array(node[8...]))
        withUnsafeBytes(of: checksum.littleEndian) { node.replaceSubrange(4..<8, with: $0) }
        let address = Self.u64(node, 24)
        if nodes[address] == nil { nodes[address] = node }
        if address >= nextAddress, address < UInt64.max { nextAddress = address + 1 }
        return address
    }

    /// The header's generation and level, as a superblock would record them for this root.
    func root(at address: UInt64) -> TreeRoot? {
        guard let node = nodes[address] else { return nil }
        return TreeRoot(address: address, generation: Self.u64(node, 16), level: node[9])
    }

    func readNode(at address: UInt64) throws -> [UInt8] {
        guard dataBlocks.contains(address), let node = nodes[address] else { throw Errno.ioError }
        return node
    }

    func writeNode(_ bytes: [UInt8], at address: UInt64) throws {
        nodes[address] = bytes
    }

    func allocateNode() throws -> UInt64 {
        guard dataBlocks.contains(nextAddress) else { throw Errno.noSpace }
        defer { nextAddress += 1 }
        return nextAddress
    }

    func releaseNode(_ address: UInt64) {}

    private static func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}
