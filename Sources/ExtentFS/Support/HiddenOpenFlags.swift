/// Open flags that <fcntl.h> declares only with _GNU_SOURCE, so Swift does not see them; the
/// engine (DirectIO) and the adapter (OpenFlags) share these.
public enum HiddenOpenFlags {
    /// O_DIRECT (x86_64's and arm64's values differ).
    #if arch(arm64)
    public static let direct: Int32 = 0o200000
    #else
    public static let direct: Int32 = 0o40000
    #endif
    /// O_PATH (Linux, every architecture extentfs runs on).
    public static let path: Int32 = 0o10000000
}
