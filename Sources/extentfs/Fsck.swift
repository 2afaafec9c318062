import ArgumentParser
import ExtentFS

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check an unmounted extentfs image; exits 1 if it has problems.")

    @Argument(help: ArgumentHelp(imageArgumentHelp))
    var image: String

    @OptionGroup var store: StoreArguments

    func run() throws {
        let report: Volume.CheckReport
        do {
            report = try naming(image) { try waitingForFinishingDaemon(image: image) { try Volume.checkReport(image: image, store: store.storeOptions) } }
        } catch {
            throw failure("fsck", error)
        }
        guard !report.problems.isEmpty else {
            print("\(image): clean (checked \(report.summary))")
            return
        }
        report.problems.forEach { print($0) }
        print("\(image): \(report.problems.count) problems (checked \(report.summary))")
        throw ExitCode.failure
    }
}
