import ArgumentParser
import CExtentFSIoctl
import ExtentFSFuse
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

struct Clone: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Share blocks of one file with another on the same extentfs mount (reflink).",
        discussion: """
            With SRC and DST only, DST becomes a copy of SRC sharing all its blocks, as with \
            cp --reflink=always: DST is created (with SRC's permission bits) if missing, else \
            truncated first. With SRC_OFFSET DST_OFFSET LENGTH, that range of SRC is shared into \
            DST, which must exist; LENGTH 0 means through the end of SRC. Offsets and lengths \
            must be multiples of the block size, except a range ending at SRC's end of file.
            """)

    @Argument(help: ArgumentHelp("The file whose blocks are shared (readable by you).", valueName: "SRC"))
    var source: String

    @Argument(help: ArgumentHelp("The file that receives them (writable by you).", valueName: "DST"))
    var destination: String

    @Argument(help: ArgumentHelp("Where the range starts in SRC: bytes, or with a K, M, G or T suffix.",
                              valueName: "SRC_OFFSET"))
    var sourceOffset: ByteSize?

    @Argument(help: ArgumentHelp("Where it goes in DST, likewise.", valueName: "DST_OFFSET"))
    var destinationOffset: ByteSize?

    @Argument(help: ArgumentHelp("How long it is, likewise; 0: through the end of SRC.", valueName: "LENGTH"))
    var length: ByteSize?

    func validate() throws {
        let given = [sourceOffset, destinationOffset, length].filter { $0 != nil }.count
        guard given == 0 || given == 3 else {
            throw ValidationError("give all of SRC_OFFSET DST_OFFSET LENGTH, or none of them")
        }
    }

    func run() throws {
        try runningSpaceCommand("clone") {
            let source = try SpaceFile.open(self.source, .readOnly)
            defer { source.close() }
            try source.requireExtentFSMount()
            var clone = extentfs_clone_args()
            clone.src_fd = Int64(source.descriptor.rawValue)
            let destination: SpaceFile
            if let sourceOffset, let destinationOffset, let length {
                clone.src_offset = sourceOffset.bytes
                clone.dest_offset = destinationOffset.bytes
                clone.length = length.bytes
                destination = try SpaceFile.open(self.destination, .writeOnly)
            } else {
                destination = try openWholeFileDestination(source)
            }
            defer { destination.close() }
            do {
                try destination.ioctl(ExtentFSIoctl.cloneRange, &clone)
            } catch let error as FileError where error.errno == .improperLink {
                throw notOnSameMount()
            }
        }
    }

    /// DST created or truncated, as cp does, but only once it is clear the clone can happen:
    /// truncating SRC itself, or a DST on another filesystem, would lose data for nothing.
    private func openWholeFileDestination(_ source: SpaceFile) throws -> SpaceFile {
        let sourceStatus = try source.status()
        var st = stat()
        if stat(destination, &st) == 0 {
            guard st.st_dev == sourceStatus.st_dev else { throw notOnSameMount() }
            guard st.st_ino != sourceStatus.st_ino else {
                throw CommandFailure("\(self.source) and \(destination) are the same file")
            }
        } else if errno == ENOENT {
            guard stat(parentDirectory(of: destination), &st) == 0 else {
                throw FileError(destination, Errno(rawValue: errno))
            }
            guard st.st_dev == sourceStatus.st_dev else { throw notOnSameMount() }
        } else {
            throw FileError(destination, Errno(rawValue: errno))
        }
        let permissions = FilePermissions(rawValue: sourceStatus.st_mode & 0o777)
        return try SpaceFile.open(destination, .writeOnly, options: [.create, .truncate], permissions: permissions)
    }

    private func notOnSameMount() -> CommandFailure {
        CommandFailure("\(source) and \(destination) are not on the same extentfs mount")
    }
}

/// The directory a new `path` would be created in.
private func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
