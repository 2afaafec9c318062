import ArgumentParser
import CExtentFSIoctl
import ExtentFSFuse
import SystemPackage

struct Map: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a file's extent map, holes included (like xfs_io -c \"fiemap -v\").",
        discussion: """
            One line per extent: its number, logical and physical byte ranges (inclusive), length \
            in bytes and flags: unwritten (allocated, reads as zeros), shared (with another file \
            or range, by clone or dedupe), delalloc (dirty data not yet given blocks) and last \
            (the file's final extent). Holes get a line without a number.
            """)

    @Argument(help: ArgumentHelp("A file on an extentfs mount.", valueName: "FILE"))
    var file: String

    func run() throws {
        try runningSpaceCommand("map") {
            let target = try SpaceFile.open(file, .readOnly)
            defer { target.close() }
            try target.requireExtentFSMount()
            let size = UInt64(clamping: try target.status().st_size)
            let extents = try extents(of: target)
            print("\(file):")
            printRow("EXT", "LOGICAL", "PHYSICAL", "LENGTH", "FLAGS")
            var number = 0
            var covered: UInt64 = 0
            for extent in extents where extent.logical + extent.length > covered {
                if extent.logical > covered { printHole(from: covered, to: extent.logical) }
                printRow("\(number):", span(extent.logical, extent.length),
                         extent.flags & delallocFlag != 0 ? "-" : span(extent.physical, extent.length),
                         String(extent.length), flagNames(extent.flags))
                number += 1
                covered = extent.logical + extent.length
            }
            if size > covered { printHole(from: covered, to: size) }
        }
    }

    /// The whole map, EXTENTFS_MAP_MAX extents per ioctl, each call starting where the last
    /// extent of the previous one ended.
    private func extents(of target: SpaceFile) throws -> [extentfs_extent] {
        var all: [extentfs_extent] = []
        var offset: UInt64 = 0
        let end = UInt64(Int64.max)
        while offset < end {
            var map = extentfs_map_args()
            map.offset = offset
            map.length = end - offset
            try target.ioctl(ExtentFSIoctl.map, &map)
            let count = min(Int(map.count), Int(EXTENTFS_MAP_MAX))
            let batch = withUnsafeBytes(of: &map.extents) { raw in
                Array(raw.bindMemory(to: extentfs_extent.self).prefix(count))
            }
            all += batch
            guard let last = batch.last, last.flags & lastFlag == 0 else { break }
            let next = last.logical + last.length
            guard next > offset else { break }  // no progress: stop rather than loop forever
            offset = next
        }
        return all
    }

    private func printHole(from start: UInt64, to end: UInt64) {
        printRow("", span(start, end - start), "hole", String(end - start), "")
    }
}

// The header's flag macros import as Int32; extentfs_extent.flags is UInt32.
private let delallocFlag = UInt32(EXTENTFS_EXTENT_DELALLOC)
private let lastFlag = UInt32(EXTENTFS_EXTENT_LAST)

/// "[first..last]", inclusive like xfs_io's ranges.
private func span(_ start: UInt64, _ length: UInt64) -> String {
    length == 0 ? "[\(start)..]" : "[\(start)..\(start + length - 1)]"
}

private func flagNames(_ flags: UInt32) -> String {
    let names: [(UInt32, String)] = [(UInt32(EXTENTFS_EXTENT_UNWRITTEN), "unwritten"),
                                     (UInt32(EXTENTFS_EXTENT_SHARED), "shared"),
                                     (delallocFlag, "delalloc"), (lastFlag, "last")]
    var parts = names.filter { flags & $0.0 != 0 }.map(\.1)
    let unknown = names.reduce(flags) { $0 & ~$1.0 }
    if unknown != 0 { parts.append("0x" + String(unknown, radix: 16)) }
    return parts.isEmpty ? "-" : parts.joined(separator: ",")
}

private func printRow(_ number: String, _ logical: String, _ physical: String, _ length: String, _ flags: String) {
    func padded(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
    print(padded(number, 5, right: true), padded(logical, 27), padded(physical, 27), padded(length, 14), flags)
}
