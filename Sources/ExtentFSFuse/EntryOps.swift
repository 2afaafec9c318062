import CFuse
import ExtentFS

/// Names, attributes and lookup references.
func installEntryOps(_ ops: inout fuse_lowlevel_ops) {
    ops.lookup = { req, parent, name in
        handle(req) { fs in
            replyEntry(req, fs, try fs.lookup(parent: parent, name: nameBytes(name)))
        }
    }
    ops.forget = { req, ino, count in
        Server.of(req).fileSystem.forget(ino, count: count)
        fuse_reply_none(req)
    }
    ops.forget_multi = { req, count, forgets in
        let fs = Server.of(req).fileSystem
        for item in UnsafeBufferPointer(start: forgets, count: count) {
            fs.forget(item.ino, count: item.nlookup)
        }
        fuse_reply_none(req)
    }
    ops.getattr = { req, ino, _ in
        handle(req) { fs in
            replyAttributes(req, try fs.getattr(ino))
        }
    }
    ops.setattr = { req, ino, attr, valid, _ in
        handle(req) { fs in
            var changes = attributeChanges(attr!.pointee, valid: valid)
            changes.privilegesRemovedBy = privilegeRemover(req, changes)
            let attributes = try fs.setattr(ino, changes)
            replyAttributes(req, attributes)
        }
    }
    ops.access = { req, ino, _ in
        // default_permissions: the kernel has already checked the mode bits; only existence is ours.
        handle(req) { fs in
            _ = try fs.getattr(ino)
            replyOK(req)
        }
    }
    ops.mknod = { req, parent, name, mode, rdev in
        handle(req) { fs in
            let attributes = try fs.mknod(parent: parent, name: nameBytes(name), mode: mode,
                                          rdev: UInt64(rdev), owner: caller(req))
            replyEntry(req, fs, attributes)
        }
    }
    ops.mkdir = { req, parent, name, mode in
        handle(req) { fs in
            let attributes = try fs.mkdir(parent: parent, name: nameBytes(name), mode: mode, owner: caller(req))
            replyEntry(req, fs, attributes)
        }
    }
    ops.symlink = { req, target, parent, name in
        handle(req) { fs in
            let attributes = try fs.symlink(parent: parent, name: nameBytes(name), target: nameBytes(target),
                                            owner: caller(req))
            replyEntry(req, fs, attributes)
        }
    }
    ops.link = { req, ino, newParent, newName in
        handle(req) { fs in
            replyEntry(req, fs, try fs.link(ino, newParent: newParent, newName: nameBytes(newName)))
        }
    }
    ops.unlink = { req, parent, name in
        handle(req) { fs in
            try fs.unlink(parent: parent, name: nameBytes(name))
            replyOK(req)
        }
    }
    ops.rmdir = { req, parent, name in
        handle(req) { fs in
            try fs.rmdir(parent: parent, name: nameBytes(name))
            replyOK(req)
        }
    }
    ops.rename = { req, parent, name, newParent, newName, flags in
        handle(req) { fs in
            try fs.rename(parent: parent, name: nameBytes(name), newParent: newParent,
                          newName: nameBytes(newName), flags: RenameFlags(rawValue: flags), whiteoutOwner: caller(req))
            replyOK(req)
        }
    }
    ops.readlink = { req, ino in
        handle(req) { fs in
            var target = try fs.readlink(ino)
            target.append(0)
            target.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) }
            }
        }
    }
}
