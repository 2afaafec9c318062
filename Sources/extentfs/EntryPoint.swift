import ArgumentParser

@main
struct Extentfs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extentfs",
        abstract: "A FUSE filesystem kept inside one image file or block device.",
        subcommands: [Mkfs.self, Mount.self, Umount.self, Fsck.self, ExerciseCommand.self]
    )
}
