import ArgumentParser

@main
struct Extentfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extentfs",
        abstract: "A FUSE filesystem kept inside one image file or block device.",
        discussion: """
            The space commands (punch to map) work on files of a mounted volume. They exit 0 on \
            success and 1 on any error, which they report in one line: \
            "extentfs: COMMAND: FILE: reason"; dedupe exits 1 when the ranges differ and 2 on \
            error. A malformed command line exits 64. `extentfs IMAGE DIR [-o OPTIONS]`, the \
            form mount(8) runs through mount.fuse3, is `extentfs mount IMAGE DIR [-o OPTIONS]`.
            """,
        subcommands: [Mkfs.self, Mount.self, Umount.self, Fsck.self,
                      Punch.self, Zero.self, Collapse.self, Insert.self, Unshare.self, Prealloc.self,
                      Clone.self, Dedupe.self, Map.self, Stats.self, ExerciseCommand.self]
    )

    static func main() {
        main(MountHelperForm.asSubcommand(Array(CommandLine.arguments.dropFirst()),
                                          subcommands: configuration.subcommands.map { $0._commandName }))
    }
}
