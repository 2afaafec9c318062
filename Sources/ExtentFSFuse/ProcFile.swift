import SystemPackage

/// The whole text of a /proc file. Read in a loop, since /proc reports a size of 0.
func readProcFile(_ path: String) throws -> String {
    let descriptor = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
    defer { try? descriptor.close() }
    var bytes: [UInt8] = []
    try withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 8) { chunk in
        while true {
            let count = try descriptor.read(into: chunk)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
