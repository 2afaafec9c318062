extension BTree {
    /// Writes every dirty node, children before parents, each to a freshly allocated address,
    /// stamped with `generation`, and returns the new root (nil for an empty tree). Nothing dirty:
    /// nothing written, the current root returned. The caller makes the writes durable before the
    /// superblock that records the root, and only then lets the allocator reuse what was released.
    ///
    /// All or nothing for the tree: if an allocation or a write fails, every address this commit
    /// allocated is released (nothing durable points at them), the tree stays dirty exactly as it
    /// was, and a later commit can try again.
    ///
    /// `generation` must be above the last commit's: the engine passes its checkpoint number, the
    /// same to every tree committed in one checkpoint.
    @discardableResult
    public func commit(generation: UInt64) throws -> TreeRoot? {
        switch root {
        case .empty: return nil
        case let .stored(stored): return stored
        case let .dirty(rootNode):
            guard generation > committedGeneration else {
                throw TreeError.generationNotNewer(given: generation, committed: committedGeneration)
            }
            var order: [TreeNode] = []
            collectDirty(rootNode, into: &order)
            var addresses: [ObjectIdentifier: UInt64] = [:]
            var written: [(node: TreeNode, address: UInt64)] = []
            do {
                for node in order {
                    let address = try allocator.allocateNode()
                    addresses[ObjectIdentifier(node)] = address
                    written.append((node, address))
                }
                for (node, address) in written {
                    let bytes = NodeCodec.encode(node, owner: owner, generation: generation, address: address,
                                                 nodeSize: nodeSize) { ref in
                        switch ref {
                        case let .stored(address, generation): return (address, generation)
                        case let .dirty(child):
                            // Children come first in `order`, so every dirty child has its address.
                            guard let address = addresses[ObjectIdentifier(child)] else {
                                preconditionFailure("a dirty child was not given an address before its parent")
                            }
                            return (address, generation)
                        }
                    }
                    try device.writeNode(bytes, at: address)
                }
            } catch {
                for (_, address) in written { allocator.releaseNode(address) }
                throw error
            }
            // Nothing below can fail: the tree becomes clean in one step.
            for (node, address) in written {
                if !node.isLeaf {
                    for index in node.children.indices {
                        if case let .dirty(child) = node.children[index], let location = child.location {
                            node.children[index] = .stored(address: location.address, generation: location.generation)
                        }
                    }
                }
                node.location = (address, generation)
                node.owner = owner
                cache.insert(node, at: address, charge: nodeSize)
            }
            pin(-written.count)
            setCommitted(generation)
            let committed = TreeRoot(address: written[written.count - 1].address, generation: generation, level: rootNode.level)
            root = .stored(committed)
            noteMutation()
            return committed
        }
    }

    /// Post-order: a node after all its dirty descendants.
    private func collectDirty(_ node: TreeNode, into order: inout [TreeNode]) {
        for child in node.children {
            if case let .dirty(child) = child { collectDirty(child, into: &order) }
        }
        order.append(node)
    }
}
