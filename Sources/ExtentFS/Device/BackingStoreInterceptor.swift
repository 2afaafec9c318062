/// Test-only view of a backing store's writes and flushes, in the order they are issued. Throwing
/// fails the write or flush before it reaches the store (fault injection). It sits in
/// BackingStore, above the backend, so it sees the same stream whether the bytes go to a file, a
/// block device or an NBD server.
protocol BackingStoreInterceptor: AnyObject, Sendable {
    func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
    func willFlush() throws
    /// A read of `count` bytes at `offset` (tests count what a mount reads).
    func willRead(count: Int, at offset: UInt64)
}

extension BackingStoreInterceptor {
    func willRead(count: Int, at offset: UInt64) {}
}
