import Synchronization

/// One change of an ExtentMap: the stamp the map had just before it and a logical range holding
/// every extent the change added or removed (a resized extent counts as removed and added), so
/// that outside `range` the map holds exactly the extents it held before. A holder of the map
/// that knew it by `from` (Inode+ExtentChanges.swift) knows that only `range` changed since.
package struct ExtentMapChange: Sendable, Equatable {
    package var from: UInt64
    package var range: Range<UInt64>

    /// Stamps name map contents, across every map of every volume in the process (a map can be
    /// copied anywhere), so they come from one counter. 0 is never a stamp.
    private static let counter = Atomic<UInt64>(0)

    package static func nextStamp() -> UInt64 {
        counter.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
