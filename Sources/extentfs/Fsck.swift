import ArgumentParser
import ExtentFS
import ExtentFSCore

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an unmounted extentfs image; exits 1 if it has problems.")

    @Argument(help: ArgumentHelp(imageArgumentHelp))
    var image: String

    @OptionGroup var store: StoreArguments

    @Flag(name: [.customShort("v"), .long], help: "Also list every inode: number, type, chattr flags (lsattr letters) and birth time.")
    var verbose = false

    func run() throws {
        let report: Volume.CheckReport
        do {
            report = try naming(image) { try waitingForFinishingDaemon(image: image) {
                try Volume.checkReport(image: image, store: store.storeOptions, listingInodes: verbose)
            } }
        } catch {
            throw failure("fsck", error)
        }
        // The label as stored: bytes, shown as UTF-8 (an invalid sequence shows as U+FFFD).
        print("\(image): format version \(report.version), " +
              (report.label.isEmpty ? "no label" : "label \"\(String(decoding: report.label, as: UTF8.self))\""))
        if verbose {
            for inode in report.inodeListing {
                print("inode \(inode.ino) \(Fsck.typeName(inode.type)) flags \(Fsck.lsattrLetters(inode.flags)) born \(Fsck.birthTime(inode.birthTime))")
            }
        }
        guard !report.problems.isEmpty else {
            print("\(image): clean (checked \(report.summary))")
            return
        }
        report.problems.forEach { print($0) }
        print("\(image): \(report.problems.count) problems (checked \(report.summary))")
        throw ExitCode.failure
    }

    private static func typeName(_ type: FileType) -> String {
        switch type {
        case .regular: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .fifo: "fifo"
        case .socket: "socket"
        case .characterDevice: "char-device"
        case .blockDevice: "block-device"
        }
    }

    /// Letters as lsattr prints them: i (immutable), a (append-only), d (nodump), A
    /// (noatime); "-" for none.
    static func lsattrLetters(_ flags: InodeFlags) -> String {
        let letters: [(InodeFlags, Character)] = [(.immutable, "i"), (.appendOnly, "a"), (.noDump, "d"), (.noAccessTime, "A")]
        let shown = String(letters.compactMap { flags.contains($0.0) ? $0.1 : nil })
        return shown.isEmpty ? "-" : shown
    }

    /// Seconds.nanoseconds since the epoch, or "unknown" (an inode from before format version 6).
    static func birthTime(_ time: Timespec) -> String {
        guard time.seconds != 0 || time.nanoseconds != 0 else { return "unknown" }
        let fraction = String(time.nanoseconds)
        return "\(time.seconds).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
    }
}
