/// The first thing that went wrong in a run: which operation, what kind of wrong, and the details.
public struct ExerciseFailure: Error, CustomStringConvertible, Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// The operation returned the wrong errno, status or count.
        case wrongOutcome = "wrong outcome"
        /// Bytes read back differ from the model.
        case contents = "wrong contents"
        case size = "wrong size"
        case seek = "wrong SEEK_DATA/SEEK_HOLE"
        case extentMap = "wrong extent map"
        /// fsck found problems after the final unmount.
        case fsck = "fsck problems"
        /// The mount does not serve the operation at all (ENOTTY, ENOSYS, EOPNOTSUPP).
        case unsupported = "unsupported operation"
        /// The target itself broke: a mount or unmount failed, the daemon went away.
        case targetBroken = "target broken"
    }

    /// Index of the operation in the sequence; the sequence's length for the final checks.
    public var index: Int
    /// Nil for the final checks.
    public var operation: ExerciseOperation?
    public var kind: Kind
    public var message: String

    public init(index: Int, operation: ExerciseOperation?, kind: Kind, message: String) {
        self.index = index
        self.operation = operation
        self.kind = kind
        self.message = message
    }

    /// What the shrinker keeps constant: the same kind of wrong after the same kind of operation.
    public var signature: String { "\(kind.rawValue) after \(operation.map { $0.kind.rawValue } ?? "the last operation")" }

    public var description: String {
        let place = operation.map { "operation \(index) (\($0))" } ?? "the final checks after \(index) operations"
        return "\(kind.rawValue) at \(place): \(message)"
    }
}
