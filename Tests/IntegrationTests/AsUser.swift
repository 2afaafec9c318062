import CIntegrationHelpers
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ids that no account on the machine has, for tests that act as an unprivileged user through
/// a mount with allow_other (the test itself runs as root).
enum TestUser {
    static let uid: uid_t = 64123
    static let gid: gid_t = 64123
    /// A group the user is put in where a test says so.
    static let group: gid_t = 64124

    static let plain = extentfs_test_user(uid: uid, gid: gid, group: 0, has_group: 0)
    static let inGroup = extentfs_test_user(uid: uid, gid: gid, group: group, has_group: 1)
}

extension TestVolume {
    /// Mounts with allow_other, so that other users may use the mount, after opening the
    /// directories above it to them (a restrictive umask may have closed them).
    func mountForOtherUsers(arguments: [String] = []) throws {
        for path in [harness.workDirectory, directory, mountPoint] {
            try sys("chmod(\(path))", chmod(path, 0o755))
        }
        try mount(arguments: ["--allow-other"] + arguments)
    }
}

extension extentfs_test_operation {
    var name: String {
        switch self {
        case EXTENTFS_TEST_CLONE: return "clone"
        case EXTENTFS_TEST_DEDUPE: return "dedupe"
        case EXTENTFS_TEST_INSERT: return "insert"
        case EXTENTFS_TEST_COLLAPSE: return "collapse"
        case EXTENTFS_TEST_UNSHARE: return "unshare"
        case EXTENTFS_TEST_WRITE: return "write"
        case EXTENTFS_TEST_TRUNCATE: return "truncate"
        default: return "operation \(rawValue)"
        }
    }
}

/// One extentfs ioctl on `path` as `user`, in a forked child (CIntegrationHelpers). Throws when
/// the child could not do its setup; the ioctl's own result is in the returned value.
func ioctlAsUser(_ user: extentfs_test_user, _ operation: extentfs_test_operation, path: String,
                 source: String? = nil, sourceDescriptor: Int32 = -1, offset: UInt64 = 0,
                 length: UInt64) throws -> extentfs_test_ioctl_result {
    var result = extentfs_test_ioctl_result()
    var user = user
    let started = path.withCString { path in
        (source ?? "").withCString { source in
            extentfs_test_ioctl_as_user(&user, Int32(operation.rawValue), path, source, sourceDescriptor,
                                        offset, length, &result)
        }
    }
    guard started == 0 else { throw HarnessError("\(operation.name) as uid \(user.uid): the child did not report: \(errnoName(-started))") }
    guard result.failed_step == 0 else {
        throw HarnessError("\(operation.name) as uid \(user.uid): setup step \(result.failed_step) failed: \(errnoName(result.setup_error))")
    }
    return result
}

/// Runs a shell command line as the test user (setpriv: its uid and gid, no supplementary
/// groups but `groups`), for tests that drive real tools (getfacl, setfacl, cat) as someone else.
func runAsTestUser(_ commandLine: String, groups: [gid_t] = [], timeout: TimeInterval = 60) throws -> ProcessResult {
    let groupArgument = groups.isEmpty ? "--clear-groups" : "--groups=" + groups.map(String.init).joined(separator: ",")
    return try ProcessRunner.run("/usr/bin/setpriv", ["--reuid=\(TestUser.uid)", "--regid=\(TestUser.gid)", groupArgument,
                                                     "/bin/sh", "-c", commandLine], timeout: timeout)
}

/// Runs a tool as root (the test's own ids) and throws unless it exits 0; returns its stdout.
@discardableResult
func runChecked(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> String {
    let result = try ProcessRunner.run(executable, arguments, timeout: timeout)
    guard result.succeeded else { throw HarnessError("\(result)") }
    return result.stdout
}
