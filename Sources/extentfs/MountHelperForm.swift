#if canImport(Glibc)
import Glibc
#endif

/// The command line mount(8) gives a FUSE filesystem: for type fuse.extentfs it runs mount.fuse3,
/// which runs `extentfs SOURCE MOUNTPOINT -o OPTIONS` (the type's name as the program, then the
/// source, the mountpoint and every option in one -o). That form is `extentfs mount`.
enum MountHelperForm {
    /// `arguments` (without the program name) with "mount" put first when they are in that form:
    /// a first operand that is no subcommand, then an existing directory (mount(8) checks the
    /// mountpoint; so a mistyped subcommand still gets the usage error), then anything.
    static func asSubcommand(_ arguments: [String], subcommands: [String]) -> [String] {
        guard arguments.count >= 2,
              !subcommands.contains(arguments[0]), arguments[0] != "help",
              !arguments[0].hasPrefix("-"), !arguments[1].hasPrefix("-"), isDirectory(arguments[1])
        else { return arguments }
        return ["mount"] + arguments
    }

    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }
}
