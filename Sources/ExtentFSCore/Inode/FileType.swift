/// The S_IFMT bits of a mode.
public enum FileType: UInt32, Sendable {
    case fifo = 0o010000
    case characterDevice = 0o020000
    case directory = 0o040000
    case blockDevice = 0o060000
    case regular = 0o100000
    case symlink = 0o120000
    case socket = 0o140000

    public static let mask: UInt32 = 0o170000

    public init?(mode: UInt32) { self.init(rawValue: mode & FileType.mask) }
}
