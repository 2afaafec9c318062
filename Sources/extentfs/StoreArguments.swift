import ArgumentParser
import ExtentFS

/// What mkfs, mount and fsck share about the image they are given: a path, or an NBD URI and
/// how long its server may keep us waiting.
struct StoreArguments: ParsableArguments {
    @Option(help: ArgumentHelp(
        "For an NBD URI: seconds the server may take to connect or to answer a request; after that the request and every later one fail with EIO (the volume shuts down at its next commit), and only a new mount reconnects.",
        valueName: "seconds"))
    var nbdTimeout: Double = 30

    func validate() throws {
        guard nbdTimeout > 0, nbdTimeout.isFinite else {
            throw ValidationError("--nbd-timeout must be a positive number of seconds")
        }
    }

    var storeOptions: StoreOptions {
        var options = StoreOptions()
        options.nbdTimeout = nbdTimeout
        return options
    }
}

/// The help text for an image argument.
let imageArgumentHelp = "The image file, block device or NBD URI (nbd://host[:port]/export, nbds://..., nbd+unix:///export?socket=PATH)."

/// An image path made absolute (the daemon runs from /, and the mount source must name it); an
/// NBD URI as it is.
func canonicalImage(_ image: String) -> String {
    StoreLocation.isNBD(image) ? image : absolutePath(image)
}
