import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// scripts/install.sh, then mount(8) and umount(8) as users run them: `mount -t fuse.extentfs`,
/// an fstab line and `mount DIR`, `mount -o remount,ro DIR` and back, `umount DIR`.
///
/// mount(8) looks for its helpers in /sbin only and gives them no PATH, so the test installs
/// into its scratch directory and runs the commands in a private mount namespace (unshare -m)
/// where /usr/sbin shows the installed helpers beside the system's own: the machine's /sbin and
/// mount table are never touched.
final class MountCommandTests: XCTestCase {
    func testInstalledMountHelpersServeMountAndUmount() throws {
        let harness = try MountHarness()
        defer { harness.tearDown() }
        let volume = try harness.makeVolume(blockSize: 4096, imageSize: "512M")
        let prefix = harness.workDirectory + "/prefix"
        let sbin = harness.workDirectory + "/sbin"

        let install = try ProcessRunner.run("/bin/bash", [MountHarness.packageRoot.path + "/scripts/install.sh"],
                                            environment: ["BUILD_DIR": URL(fileURLWithPath: harness.binary).deletingLastPathComponent().path,
                                                          "PREFIX": prefix, "SBINDIR": sbin],
                                            timeout: 120)
        XCTAssertTrue(install.succeeded, "\(install)")
        for installed in ["\(prefix)/bin/extentfs", "\(prefix)/lib/libExtentFSPreload.so",
                          "\(sbin)/mount.fuse.extentfs", "\(sbin)/umount.fuse.extentfs"] {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: installed), "\(installed) is not installed")
        }

        let script = harness.workDirectory + "/mount-commands.sh"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        let unshare = try XCTUnwrap(["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) },
                                    "unshare (util-linux) is missing")
        let result = try ProcessRunner.run(unshare, ["--mount", "--propagation", "private", "/bin/bash", script],
                                           environment: ["WORK": harness.workDirectory, "SBIN": sbin,
                                                         "IMAGE": volume.image, "DIR": volume.mountPoint],
                                           timeout: 300)
        XCTAssertTrue(result.succeeded && result.stdout.contains("mount commands: all passed"), "\(result)")
        XCTAssertFalse(volume.isMounted)
        try volume.requireClean("after the mount commands")
    }

    /// Runs in its own mount namespace. Every check prints what failed and exits 1.
    private static let script = #"""
        set -u
        fail() { echo "FAIL: $*"; exit 1; }
        flags() { awk -v d="$DIR" '$5 == d { print $6 }' /proc/self/mountinfo | tail -n 1; }
        superflags() { awk -v d="$DIR" '$5 == d { for (i = 7; i <= NF; i++) if ($i == "-") print $(i + 3) }' /proc/self/mountinfo | tail -n 1; }
        mounted() { awk -v d="$DIR" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo; }

        # /usr/sbin as mount(8) would find it after install.sh: the system's tools, and the helpers.
        mkdir -p "$WORK/system-sbin" "$WORK/sbin-view"
        mount --bind /usr/sbin "$WORK/system-sbin" || fail "bind /usr/sbin"
        for tool in /usr/sbin/*; do ln -s "$WORK/system-sbin/${tool##*/}" "$WORK/sbin-view/"; done
        ln -sf "$SBIN/mount.fuse.extentfs" "$SBIN/umount.fuse.extentfs" "$WORK/sbin-view/"
        mount --bind "$WORK/sbin-view" /usr/sbin || fail "bind the helpers over /usr/sbin"

        mount -t fuse.extentfs "$IMAGE" "$DIR" -o noatime,relatime,nodev || fail "mount -t fuse.extentfs"
        mounted || fail "mount -t fuse.extentfs returned 0 but $DIR is not mounted"
        case ",$(flags)," in *,nodev,*noatime*) ;; *) fail "mount flags $(flags) lack nodev,noatime" ;; esac
        echo one > "$DIR/one" || fail "write after mount -t"

        mount -o remount,ro "$DIR" || fail "mount -o remount,ro"
        [ "$(superflags | cut -d, -f1)" = ro ] || fail "superblock options after remount,ro: $(superflags)"
        if echo two > "$DIR/two" 2>/dev/null; then fail "a write after remount,ro succeeded"; fi
        mount -o remount,rw "$DIR" || fail "mount -o remount,rw"
        [ "$(superflags | cut -d, -f1)" = rw ] || fail "superblock options after remount,rw: $(superflags)"
        echo two > "$DIR/two" || fail "write after remount,rw"

        # Dirty data the daemon writes back after umount(8) has returned (util-linux 2.38 does not
        # run umount.fuse.extentfs): fsck and mount wait for it rather than find the image in use.
        head -c 100000000 /dev/urandom > "$DIR/big" || fail "write 100 MB"
        umount "$DIR" || fail "umount"
        mounted && fail "still mounted after umount"
        "$WORK/prefix/bin/extentfs" fsck "$IMAGE" || fail "fsck right after umount"

        printf '%s %s fuse.extentfs defaults,noatime 0 0\n' "$IMAGE" "$DIR" > "$WORK/fstab"
        mount -T "$WORK/fstab" "$DIR" || fail "mount DIR from an fstab line"
        case ",$(flags)," in *,noatime,*) ;; *) fail "mount flags from fstab $(flags) lack noatime" ;; esac
        [ "$(cat "$DIR/one")$(cat "$DIR/two")" = onetwo ] || fail "contents after the fstab mount"
        mount -T "$WORK/fstab" -o remount,ro "$DIR" || fail "remount,ro of the fstab mount"
        mount -T "$WORK/fstab" -o remount,rw "$DIR" || fail "remount,rw of the fstab mount"
        head -c 100000000 /dev/urandom > "$DIR/big" || fail "write 100 MB again"
        umount "$DIR" || fail "umount of the fstab mount"

        mount -t fuse.extentfs "$IMAGE" "$DIR" -o ro,allow_other || fail "mount -o ro,allow_other"
        case ",$(superflags)," in *,allow_other,*) ;; *) fail "superblock options $(superflags) lack allow_other" ;; esac
        if touch "$DIR/three" 2>/dev/null; then fail "a create on a ro mount succeeded"; fi
        mount -o remount,rw "$DIR" || fail "remount,rw of a ro mount"
        echo three > "$DIR/three" || fail "write after remount,rw of a ro mount"
        umount "$DIR" || fail "umount of the ro mount"
        echo "mount commands: all passed"
        """#
}
