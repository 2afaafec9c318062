import ArgumentParser
import ExtentFS
import ExtentFSCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

struct Mkfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an extentfs volume in an image file or on a block device.")

    @Argument(help: ArgumentHelp(imageArgumentHelp + " A file is created if missing."))
    var image: String

    @Option(help: ArgumentHelp("Volume size, in bytes or with a K, M, G or T suffix (powers of 1024). Required to create a new image; default: the existing file's or device's size.", valueName: "size"))
    var size: ByteSize?

    @Option(help: "Block size in bytes: a power of two from 512 to 65536.")
    var blockSize: ByteSize = ByteSize(bytes: 4096)

    @Flag(help: "Overwrite an image that already holds an extentfs volume.")
    var force = false

    @Option(name: [.customShort("L"), .long], help: ArgumentHelp("Filesystem label: at most 255 bytes, no NUL (read by xfs_io -c label and extentfs fsck).", valueName: "label"))
    var label: String?

    @OptionGroup var store: StoreArguments

    func validate() throws {
        let bytes = blockSize.bytes
        guard (512...65536).contains(bytes), bytes & (bytes - 1) == 0 else {
            throw ValidationError("block size \(bytes) is not a power of two from 512 to 65536")
        }
        if let size, size.bytes == 0 {
            throw ValidationError("size must be greater than zero")
        }
        if let label, label.utf8.count > Superblock.maxLabelBytes {
            throw ValidationError("label is \(label.utf8.count) bytes; extentfs labels are at most \(Superblock.maxLabelBytes) bytes")
        }
    }

    func run() throws {
        try reportingErrors("mkfs") {
            var options = FormatOptions()
            options.blockSize = Int(blockSize.bytes)
            options.size = size?.bytes
            options.force = force
            options.label = Array((label ?? "").utf8)
            options.store = store.storeOptions
            let created = try createIfMissing()
            do {
                try naming(image) { try Volume.format(image: image, options: options) }
            } catch {
                if created { unlink(image) }
                throw error
            }
            print("\(image): extentfs volume, block size \(blockSize.bytes)" + (label.map { ", label \"\($0)\"" } ?? ""))
        }
    }

    /// A new image needs a size; the file itself is made here so the engine only ever formats
    /// something that exists. Returns whether it was created (and so is ours to remove on failure).
    private func createIfMissing() throws -> Bool {
        // An NBD export exists on its server, with its own size.
        guard !StoreLocation.isNBD(image) else { return false }
        guard size != nil else {
            guard access(image, F_OK) == 0 else {
                throw CommandFailure("\(image) does not exist; give --size to create it")
            }
            return false
        }
        do {
            // The image holds every file's bytes, whatever their modes inside: its owner only.
            let fd = try FileDescriptor.open(image, .writeOnly, options: [.create, .exclusiveCreate],
                                             permissions: [.ownerReadWrite])
            try fd.close()
            return true
        } catch Errno.fileExists {
            return false
        }
    }
}
