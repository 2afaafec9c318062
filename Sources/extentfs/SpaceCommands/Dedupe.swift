import ArgumentParser
import CExtentFSIoctl
import ExtentFSFuse
import SystemPackage

struct Dedupe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Share blocks of two identical ranges, after comparing them (FIDEDUPERANGE).",
        discussion: """
            The ranges are compared and, only if every byte matches, DST's range is made to share \
            SRC's blocks, as one atomic step. Offsets and lengths must be multiples of the block \
            size, except a range ending at SRC's end of file.

            Exit status, as with cmp: 0 deduped ("deduped N bytes"), 1 the ranges differ and \
            nothing changed ("ranges differ"), 2 an error.
            """)

    @Argument(help: ArgumentHelp("The file whose blocks are kept (readable by you).", valueName: "SRC"))
    var source: String

    @Argument(help: ArgumentHelp("Where the range starts in SRC: bytes, or with a K, M, G or T suffix.",
                              valueName: "SRC_OFFSET"))
    var sourceOffset: ByteSize

    @Argument(help: ArgumentHelp("The file whose range comes to share SRC's blocks (writable or owned by you).",
                              valueName: "DST"))
    var destination: String

    @Argument(help: ArgumentHelp("Where the range starts in DST, likewise.", valueName: "DST_OFFSET"))
    var destinationOffset: ByteSize

    @Argument(help: ArgumentHelp("How long the ranges are, likewise.", valueName: "LENGTH"))
    var length: ByteSize

    /// cmp's convention; 1 is taken by "the ranges differ".
    static let errorStatus: Int32 = 2

    func run() throws {
        var differ = false
        try runningSpaceCommand("dedupe", errorStatus: Self.errorStatus) {
            let source = try SpaceFile.open(self.source, .readOnly)
            defer { source.close() }
            let destination = try openDestination()
            defer { destination.close() }
            try destination.requireExtentFSMount()
            var dedupe = extentfs_dedupe_args()
            dedupe.src_fd = Int64(source.descriptor.rawValue)
            dedupe.src_offset = sourceOffset.bytes
            dedupe.dest_offset = destinationOffset.bytes
            dedupe.length = length.bytes
            do {
                try destination.ioctl(ExtentFSIoctl.dedupeRange, &dedupe)
            } catch let error as FileError where error.errno == .improperLink {
                throw CommandFailure("\(self.source) and \(self.destination) are not on the same extentfs mount")
            }
            switch dedupe.status {
            case EXTENTFS_DEDUPE_SAME:
                print("deduped \(dedupe.bytes_deduped) bytes")
            case EXTENTFS_DEDUPE_DIFFERS:
                print("ranges differ")
                differ = true
            case let status where status < 0 && status != Int32.min:
                throw FileError(self.destination, Errno(rawValue: -status))
            case let status:
                throw CommandFailure("\(self.destination): unknown dedupe status \(status)")
            }
        }
        if differ { throw ExitCode.failure }
    }

    /// For writing if allowed; else read-only, which is enough for DST's owner (as with
    /// FIDEDUPERANGE, so files without write permission can be deduplicated too).
    private func openDestination() throws -> SpaceFile {
        do {
            return try SpaceFile.open(destination, .writeOnly)
        } catch let error as FileError where error.errno == .permissionDenied {
            return try SpaceFile.open(destination, .readOnly)
        }
    }
}
