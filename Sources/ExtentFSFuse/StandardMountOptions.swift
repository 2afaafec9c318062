/// The options `mount -o` takes, sorted into what libfuse 3.14 passes to the kernel, what the
/// engine needs, and what neither can take (left out, each with the reason).
///
/// mount(8) runs `extentfs IMAGE DIR -o rw,noatime,dev,suid...` (through mount.fuse3), with the
/// options of any filesystem. libfuse passes the VFS flags it knows (ro, rw, suid, nosuid, dev,
/// nodev, exec, noexec, sync, async, dirsync, atime, noatime) as mount(2) flags and refuses every
/// other option it does not know, relatime among them; those are sorted out here. An option
/// neither list knows still goes to libfuse, which refuses it, so a mistyped option fails the
/// mount rather than being dropped unseen.
public struct StandardMountOptions: Equatable, Sendable {
    /// For the libfuse command line, in the order given.
    public var forFuse: [String] = []
    /// `ro` (the last of ro and rw wins, as for mount(8)): the engine refuses every change too.
    public var readOnly = false
    /// `sync` (the last of sync and async wins) and `dirsync`: the kernel passes them as flags
    /// and does nothing more for FUSE than an fsync after each write under `sync`; the engine
    /// commits the changes they name before answering (MountOptions).
    public var sync = false
    public var dirsync = false
    /// Options accepted and left out, with why.
    public var leftOut: [LeftOut] = []
    /// `remount`: mount(8) asks to change the flags of a live mount (it passes the mount's
    /// whole option list, old options merged with the new); `remountFlags` are the mount(2)
    /// flags that list asks for.
    public var isRemount = false
    public var remountFlags: UInt = 0

    public struct LeftOut: Equatable, Sendable {
        public var option: String
        public var reason: String
    }

    /// `groups`: the arguments of each -o, comma-separated.
    public init(_ groups: [String]) {
        for group in groups {
            for option in splitOptions(group) where !option.isEmpty {
                sort(option)
            }
        }
    }

    private mutating func sort(_ option: String) {
        let name = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
        if name == "remount" {
            isRemount = true
            return
        }
        if let (flag, on) = Self.remountFlagByOption[name] {
            remountFlags = on ? remountFlags | flag : remountFlags & ~flag
        }
        if let reason = Self.leftOutReasons[name] ?? Self.prefixReason(name) {
            leftOut.append(LeftOut(option: option, reason: reason))
            return
        }
        switch name {
        case "ro": readOnly = true
        case "rw": readOnly = false
        case "sync": sync = true
        case "async": sync = false
        case "dirsync": dirsync = true
        default: break
        }
        forFuse.append(option)
    }

    private static let atimeReason = "FUSE leaves access times to the daemon, and extentfs changes them only when asked to (utimensat, touch -a), as with noatime; the mount's atime flag means nothing for it"

    /// Options that mean something to mount(8) or another filesystem but that libfuse 3.14
    /// cannot pass, or that extentfs sets itself.
    private static let leftOutReasons: [String: String] = [
        // What the kernel gives every new mount anyway (unless noatime): libfuse has no name for it.
        "relatime": atimeReason,
        "norelatime": atimeReason,
        "strictatime": atimeReason,
        "nostrictatime": atimeReason,
        "diratime": atimeReason,
        "nodiratime": atimeReason,
        "lazytime": "timestamps are metadata like any other here, committed with the rest (every 5 s and on fsync)",
        "nolazytime": "timestamps are metadata like any other here, committed with the rest (every 5 s and on fsync)",
        "iversion": "FUSE has no i_version",
        "noiversion": "FUSE has no i_version",
        "nomand": "mandatory locks are gone from Linux",
        "silent": "a mount(2) flag libfuse cannot pass; it only quietens kernel messages",
        "loud": "a mount(2) flag libfuse cannot pass; it only quietens kernel messages",
        "user_xattr": "extended attributes are always on",
        // The mount source and type: `extentfs umount` finds the image by them.
        "fsname": "extentfs names the image as the mount source itself",
        "subtype": "extentfs sets the type fuse.extentfs itself",
        "default_permissions": "always on: the kernel checks permissions",
        // mount(8) lists them on a remount, from the live mount's options.
        "user_id": "libfuse sets it itself",
        "group_id": "libfuse sets it itself",
        "rootmode": "libfuse sets it itself",
        // mount(8)'s own options, when extentfs is run by hand with an fstab's option list.
        "defaults": "mount(8)'s shorthand, not an option of the filesystem",
        "auto": "for mount(8) -a, not for the filesystem",
        "noauto": "for mount(8) -a, not for the filesystem",
        "user": "for mount(8), which decides who may mount",
        "nouser": "for mount(8), which decides who may mount",
        "users": "for mount(8), which decides who may mount",
        "owner": "for mount(8), which decides who may mount",
        "group": "for mount(8), which decides who may mount",
        "nofail": "for mount(8) and systemd at boot",
        "_netdev": "for mount(8) and systemd at boot",
        "comment": "for fstab readers, not for the filesystem",
    ]

    /// mount(2) flags (<sys/mount.h>) by option, and whether the option sets or clears it: what
    /// a remount asks for. A flag no option names is cleared, as mount(8) does with MS_REMOUNT.
    private static let remountFlagByOption: [String: (UInt, Bool)] = {
        let flags: [(on: String, off: String, flag: UInt)] = [
            ("ro", "rw", 1),                    // MS_RDONLY
            ("nosuid", "suid", 2),              // MS_NOSUID
            ("nodev", "dev", 4),                // MS_NODEV
            ("noexec", "exec", 8),              // MS_NOEXEC
            ("sync", "async", 16),              // MS_SYNCHRONOUS
            ("dirsync", "", 128),               // MS_DIRSYNC
            ("nosymfollow", "symfollow", 256),  // MS_NOSYMFOLLOW
            ("noatime", "atime", 1024),         // MS_NOATIME
            ("nodiratime", "diratime", 2048),   // MS_NODIRATIME
            ("relatime", "norelatime", 1 << 21),          // MS_RELATIME
            ("strictatime", "nostrictatime", 1 << 24),    // MS_STRICTATIME
            ("lazytime", "nolazytime", 1 << 25),          // MS_LAZYTIME
        ]
        var byOption: [String: (UInt, Bool)] = [:]
        for entry in flags {
            byOption[entry.on] = (entry.flag, true)
            if !entry.off.isEmpty { byOption[entry.off] = (entry.flag, false) }
        }
        return byOption
    }()

    /// Userspace options (x-systemd.*, x-gvfs-*): mount(8) keeps them; they are not for the
    /// filesystem.
    private static func prefixReason(_ name: String) -> String? {
        name.hasPrefix("x-") ? "a userspace option (x-*), for mount(8) and its helpers" : nil
    }
}

/// Splits on commas, keeping a backslash-escaped comma (libfuse's own escape) in its option.
private func splitOptions(_ group: String) -> [String] {
    var options: [String] = []
    var current = ""
    var escaped = false
    for character in group {
        if escaped {
            current.append(character)
            escaped = false
        } else if character == "\\" {
            current.append(character)
            escaped = true
        } else if character == "," {
            options.append(current)
            current = ""
        } else {
            current.append(character)
        }
    }
    options.append(current)
    return options
}
