import Foundation
import NBDTestServer
@testable import ExtentFS

/// The NBD export a crash volume lives on (CrashBacking.nbd): nbdkit's file plugin over a file
/// in the volume's directory, behind nbdkit's cache filter. The filter plays the disk's volatile
/// write cache: in `cache=writeback` it keeps every write and hands it to the plugin only on
/// NBD_CMD_FLUSH (with no size limit it never writes one back early), so the plugin's file is
/// what a power cut would leave. In `cache=unsafe` it ignores flushes: a server (or a store) that
/// drops them, for the harness's self-test.
///
/// Formatted through a server in writeback mode that is then stopped (what mkfs flushed is all
/// the file holds), so `base` is the durable image mkfs left; the workload's server is started
/// afterwards on the same file, in the mode asked for.
final class CrashNBDExport {
    enum ServerCache: String {
        case writeback
        case unsafe
    }

    /// The plugin's file: the durable side.
    let file: String
    let server: NBDTestServer
    var uri: String { server.uri }

    init(directory: String, blockSize: Int, cache: ServerCache) throws {
        file = directory + "/export.img"
        let plugin = NBDTestServer.Plugin.file(path: file, bytes: CrashTestSettings.imageBytes)
        let formatting = try Self.start(plugin, directory: directory, cache: .writeback)
        var format = FormatOptions()
        format.blockSize = blockSize
        do {
            try Volume.format(image: formatting.uri, options: format)
        } catch {
            formatting.stop()
            throw error
        }
        formatting.stop()
        server = try Self.start(plugin, directory: directory, cache: cache)
    }

    private static func start(_ plugin: NBDTestServer.Plugin, directory: String, cache: ServerCache) throws -> NBDTestServer {
        try NBDTestServer(plugin, transport: .unixSocket, directory: directory, filters: ["cache"], parameters: ["cache=\(cache.rawValue)"])
    }

    deinit { server.stop() }
}
