/// The command line mount(8) gives a FUSE filesystem: for type fuse.extentfs it runs mount.fuse3,
/// which runs `extentfs SOURCE MOUNTPOINT -o OPTIONS` (the type's name as the program, then the
/// source, the mountpoint and every option in one -o). That form is `extentfs mount`.
enum MountHelperForm {
    /// `arguments` (without the program name) with "mount" put first when they are in that form:
    /// two operands that are neither a subcommand nor an option, then anything.
    static func asSubcommand(_ arguments: [String], subcommands: [String]) -> [String] {
        guard arguments.count >= 2,
              !subcommands.contains(arguments[0]), arguments[0] != "help",
              !arguments[0].hasPrefix("-"), !arguments[1].hasPrefix("-")
        else { return arguments }
        return ["mount"] + arguments
    }
}
