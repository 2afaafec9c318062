import XCTest

/// A varied tree written through the mount must come back identical after unmount, a clean
/// fsck and a remount.
final class TreeRoundTripTests: XCTestCase {
    func testTreeSurvivesRemount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }

        for blockSize in MountHarness.blockSizes {
            let volume = try harness.makeVolume(blockSize: blockSize, imageSize: "256M")
            let tree = SampleTree(blockSize: blockSize)
            try volume.mount()

            try tree.build(in: volume.mountPoint)
            try tree.verify(in: volume.mountPoint, "bs \(blockSize), before unmount")
            let before = try TreeSnapshot.capture(root: volume.mountPoint)

            try volume.remountChecked("bs \(blockSize), after writing the tree")
            let after = try TreeSnapshot.capture(root: volume.mountPoint)
            let differences = after.differences(from: before)
            XCTAssertTrue(differences.isEmpty,
                          "bs \(blockSize): tree changed across remount:\n  " + differences.joined(separator: "\n  "))
            try tree.verify(in: volume.mountPoint, "bs \(blockSize), after remount")

            try volume.unmount()
            try volume.requireClean("bs \(blockSize), after reading the tree back")
        }
    }
}
