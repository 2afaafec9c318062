import Foundation
import SystemPackage
@testable import ExtentFS

/// A backing store interceptor that records, in issue order, every write (offset and a copy of
/// the bytes) and every flush the engine issues, and the markers the workload adds between them
/// ("fsync of /a returned"). Each marker carries the number of flushes issued before it; since the
/// workload is single-threaded and a marker is added after the call returned, those flushes have
/// completed, which is what makes them a crash point's durable prefix.
///
/// It can also fail one write or flush (fault injection): the Nth write or the Nth flush throws
/// the given errno instead of reaching the store, and later ones go through (a transient error:
/// the engine must not treat a later success as if nothing had happened).
final class CrashRecorder: BackingStoreInterceptor, @unchecked Sendable {
    enum Event {
        case write(offset: UInt64, bytes: [UInt8])
        case flush
        /// The write or flush that fault injection failed: it never reached the store. `write` is
        /// nil for a flush; for a write, where it was going tells a page of a file from metadata.
        case failed(Fault, write: (offset: UInt64, bytes: [UInt8])?)
    }

    struct Marker {
        /// Events recorded before it.
        var eventCount: Int
        /// Flushes issued (and, at the time the marker is added, completed) before it.
        var flushes: Int
        var text: String
    }

    struct Fault: CustomStringConvertible {
        enum Kind: String { case write, flush }
        var kind: Kind
        /// 1-based: the Nth write (each vector of a gathered write counts) or Nth flush.
        var ordinal: Int
        var error: Errno
        var description: String { "\(kind) #\(ordinal) failing with \(error == .ioError ? "EIO" : error == .noSpace ? "ENOSPC" : "\(error)")" }
    }

    private let lock = NSLock()
    private var _events: [Event] = []
    private var _markers: [Marker] = []
    private var _flushes = 0
    private var _writes = 0
    private var armed: Fault?
    private var _faultEventIndex: Int?

    init(failing fault: Fault? = nil) { armed = fault }

    func willWrite(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try lock.withLock {
            _writes += 1
            if let fault = armed, fault.kind == .write, fault.ordinal == _writes {
                armed = nil
                _faultEventIndex = _events.count
                _events.append(.failed(fault, write: (offset, Array(bytes))))
                throw fault.error
            }
            _events.append(.write(offset: offset, bytes: Array(bytes)))
        }
    }

    func willFlush() throws {
        try lock.withLock {
            if let fault = armed, fault.kind == .flush, fault.ordinal == _flushes + 1 {
                armed = nil
                _faultEventIndex = _events.count
                _events.append(.failed(fault, write: nil))
                throw fault.error
            }
            // Counted before the flush is done: see the type's comment for why that is the same.
            _flushes += 1
            _events.append(.flush)
        }
    }

    /// Records a marker and returns the number of flushes before it (its stamp).
    @discardableResult
    func mark(_ text: String) -> Int {
        lock.withLock {
            _markers.append(Marker(eventCount: _events.count, flushes: _flushes, text: text))
            return _flushes
        }
    }

    var flushes: Int { lock.withLock { _flushes } }
    var writes: Int { lock.withLock { _writes } }
    var events: [Event] { lock.withLock { _events } }
    var markers: [Marker] { lock.withLock { _markers } }
    /// Where the injected fault sits in `events`, once it fired.
    var faultEventIndex: Int? { lock.withLock { _faultEventIndex } }
    var eventCount: Int { lock.withLock { _events.count } }
}
