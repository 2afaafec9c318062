/// Which of a regular file's extents changed since its last checkpoint (and, the same way, since
/// its last log record: `unloggedExtentRange`, for the record to carry those extents only),
/// followed without comparing maps and without the checkpoint changing the map.
///
/// Invariant (under Metadata.lock): the extents the metadata tree will hold for this inode once
/// the checkpoints taken so far are written differ from those of the map stamped
/// `followedExtentStamp` only within `checkpointExtentRange` (nil: unknown, rewrite them all).
/// It holds because:
/// - `extents`' observer runs after every change of the map, in place or whole, and calls
///   `followExtentChange`: a map with the followed stamp has the same extents (nothing to add);
///   a map whose latest change starts from the followed stamp differs from it only within that
///   change's range (ExtentMapChange), which joins the range; any other map (a map replaced
///   whole, or changed more than once out of the inode's sight) makes the range unknown.
/// - The checkpoint takes the range with the image of the map it writes, then calls
///   `extentsCheckpointed`, which changes only these two unobserved properties: no change is
///   noted, and the map (shared with the image being written) is not copied.
/// - Loading from the tree marks the loaded map checkpointed; every other new inode starts
///   unknown.
extension Inode {
    /// Called by `extents`' observer after every change of the map.
    func followExtentChange() {
        let stamp = extents.stamp
        guard stamp != followedExtentStamp else { return }
        if let change = extents.latestChange, change.from == followedExtentStamp {
            checkpointExtentRange = checkpointExtentRange.map { Self.joined($0, change.range) }
            unloggedExtentRange = unloggedExtentRange.map { Self.joined($0, change.range) }
        } else {
            checkpointExtentRange = nil
            unloggedExtentRange = nil
        }
        followedExtentStamp = stamp
    }

    /// The smallest range holding both (an empty range holds nothing).
    static func joined(_ range: Range<UInt64>, _ other: Range<UInt64>) -> Range<UInt64> {
        if range.isEmpty { return other }
        if other.isEmpty { return range }
        return min(range.lowerBound, other.lowerBound)..<max(range.upperBound, other.upperBound)
    }

    /// The tree holds (or the checkpoint being written will hold) exactly the current map.
    func extentsCheckpointed() {
        checkpointExtentRange = 0..<0
        followedExtentStamp = extents.stamp
    }
}
