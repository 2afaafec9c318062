import ArgumentParser
import ExtentFS

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an unmounted extentfs image; exits 1 if it has problems.")

    @Argument(help: ArgumentHelp(imageArgumentHelp))
    var image: String

    @OptionGroup var store: StoreArguments

    func run() throws {
        let problems: [String]
        do {
            problems = try naming(image) { try waitingForFinishingDaemon(image: image) { try Volume.check(image: image, store: store.storeOptions) } }
        } catch {
            throw failure("fsck", error)
        }
        guard !problems.isEmpty else {
            print("\(image): clean")
            return
        }
        problems.forEach { print($0) }
        throw ExitCode.failure
    }
}
