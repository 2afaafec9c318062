/// Which of a regular file's extents changed since its last checkpoint, followed without
/// comparing maps and without the checkpoint changing the map.
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
        if let range = checkpointExtentRange, let change = extents.latestChange, change.from == followedExtentStamp {
            checkpointExtentRange = range.isEmpty
                ? change.range
                : min(range.lowerBound, change.range.lowerBound)..<max(range.upperBound, change.range.upperBound)
        } else {
            checkpointExtentRange = nil
        }
        followedExtentStamp = stamp
    }

    /// The tree holds (or the checkpoint being written will hold) exactly the current map.
    func extentsCheckpointed() {
        checkpointExtentRange = 0..<0
        followedExtentStamp = extents.stamp
    }
}
