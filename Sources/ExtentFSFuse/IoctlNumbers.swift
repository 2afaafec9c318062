import CExtentFSIoctl

/// The ioctl numbers of extentfs_ioctl.h, for the adapter and the CLI. The header's _IOW and
/// _IOWR macros do not import into Swift, so they are rebuilt here as asm-generic/ioctl.h builds
/// them (x86_64, arm64, riscv64: direction in bits 30-31, argument size in 16-29, type 8-15,
/// number 0-7). The sizes come from the imported structs, so header and Swift cannot disagree.
public enum ExtentFSIoctl {
    public static let collapseRange = command(1, writes: extentfs_range_args.self)
    public static let insertRange = command(2, writes: extentfs_range_args.self)
    public static let unshareRange = command(3, writes: extentfs_range_args.self)
    public static let cloneRange = command(4, writes: extentfs_clone_args.self)
    public static let dedupeRange = command(5, writes: extentfs_dedupe_args.self, reads: true)
    public static let map = command(6, writes: extentfs_map_args.self, reads: true)
    public static let stats = command(7, reads: extentfs_stats.self)
    public static let stats2 = command(8, reads: extentfs_stats2.self)

    /// _IOW (the caller passes the struct in) or, with `reads`, _IOWR (and gets it back).
    private static func command<Argument>(_ number: UInt32, writes _: Argument.Type, reads: Bool = false) -> UInt32 {
        let write: UInt32 = 1, read: UInt32 = 2
        let direction = reads ? write | read : write
        let size = UInt32(MemoryLayout<Argument>.size)
        precondition(size < 1 << 14, "an ioctl argument must be under 16 KiB")
        return direction << 30 | size << 16 | UInt32(EXTENTFS_IOC_MAGIC) << 8 | number
    }

    /// _IOR: the caller passes nothing in and gets the struct back.
    private static func command<Argument>(_ number: UInt32, reads _: Argument.Type) -> UInt32 {
        let read: UInt32 = 2
        let size = UInt32(MemoryLayout<Argument>.size)
        precondition(size < 1 << 14, "an ioctl argument must be under 16 KiB")
        return read << 30 | size << 16 | UInt32(EXTENTFS_IOC_MAGIC) << 8 | number
    }
}
