import SystemPackage

/// Errnos that mean "this mount does not serve the operation at all" rather than "the operation
/// failed": ENOTTY or ENOSYS from an extentfs ioctl (the adapter has no handler for it), and
/// EOPNOTSUPP from a fallocate mode or copy_file_range the model expects to work. These are
/// reported as failures with a clear cause, never skipped.
enum Unsupported {
    static func explain(_ operation: ExerciseOperation, _ errno: Errno) -> String? {
        let kind = operation.kind
        if OperationKind.throughIoctls.contains(kind), errno == .inappropriateIOCTLForDevice || errno == .noFunction {
            return "the mount answered \(errno) (errno \(errno.rawValue)) to the extentfs ioctl for \(kind.rawValue): it does not " +
                "serve the extentfs ioctls (is the FUSE adapter's ioctl handler in this build?). " +
                "--ops-without-ioctls leaves \(ioctlKinds) out until it is."
        }
        if errno == .notSupported || errno == .noFunction {
            switch operation {
            case .fallocate(_, _, _, let mode) where mode.kind != .badFallocate:
                return "the mount answered \(errno) to fallocate mode \(mode.rawValue) (flags \(mode.flags)): it does not " +
                    "serve fallocate (is the FUSE adapter's fallocate handler in this build?). " +
                    "--leave-out \(mode.kind.rawValue) leaves it out until it is."
            case .copyRange:
                return "the mount answered \(errno) to copy_file_range."
            default:
                break
            }
        }
        return nil
    }

    static var ioctlKinds: String {
        OperationKind.allCases.filter { OperationKind.throughIoctls.contains($0) }.map(\.rawValue).joined(separator: ", ")
    }
}
