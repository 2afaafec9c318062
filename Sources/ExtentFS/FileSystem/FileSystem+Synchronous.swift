/// The `dirsync` and `sync` mount options. The kernel does nothing for them on a FUSE mount but
/// send an fsync after each write under `sync`, so the engine does the rest, as ext4 and XFS
/// commit such changes before the call returns: with `dirsync` (or `sync`) every change to a
/// directory (create, mkdir, mknod, symlink, link, unlink, rmdir, rename), with `sync` also
/// every change of attributes (chmod, chown, utimes, truncate). A commit is a log record and a
/// flush; what went in memory before a failed one stays, and the volume shuts down.
extension FileSystem {
    func commitIfDirectoriesSynchronous() throws {
        if options.synchronousDirectories || options.synchronousAttributes { try journal.force() }
    }

    func commitIfAttributesSynchronous() throws {
        if options.synchronousAttributes { try journal.force() }
    }
}
