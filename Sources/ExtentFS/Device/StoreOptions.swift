/// How to reach the backing store, beyond its name. Only NBD exports use them today.
public struct StoreOptions: Sendable {
    /// Seconds an NBD server may take to connect or to answer a command before the store gives
    /// up on the connection: the command and every later one fail with EIO (a metadata write or
    /// a flush among them shuts the volume down). Reconnecting is left to the next mount.
    public var nbdTimeout: Double = 30
    public init() {}
}
