import Foundation
import SystemPackage
@testable import ExtentFS

/// Runs a workload with one write or flush failing (EIO or ENOSPC from the device) and checks
/// the contract (XFS's shutdown policy):
///
/// - a call that promises durability (fsync, fdatasync, fsyncdir, sync, unmount) and issued the
///   failed write or flush does not return success;
/// - a failed metadata write or any failed flush shuts the volume down: every later request
///   throws EIO, unmount throws an error saying changes were lost, nothing more is written;
/// - a failed data write of a file is reported by the next fsync of that file;
/// - the image as the fault left it (then mounted, so a log is replayed) passes the crash
///   checks for every fsync that returned success, and fsck;
/// - the engine never traps (that kills the test process; TrapReporter names the case).
///
/// A failed write is told apart by its bytes (FaultTarget): a piece of exactly one file's data,
/// metadata, or (zeros, shared data) something only the image checks judge.
struct FaultInjection {
    let workload: CrashWorkload
    let blockSize: Int

    /// The workload's node number for the probe after a shutdown.
    private static let probeID = 251

    /// Writes and flushes of a run without faults: the faults to inject.
    func count() throws -> (writes: Int, flushes: Int) {
        let volume = try CrashVolume(blockSize: blockSize)
        let next = workload.makeSource(blockSize)
        while let step = next(volume.runner.model) { try volume.runner.run(step) }
        try volume.runner.run(.unmount)
        return (volume.recorder.writes, volume.recorder.flushes)
    }

    /// The faults to inject: every write and flush, or a seeded sample of `limit` (flushes first:
    /// each is a step of a commit).
    func faults(writes: Int, flushes: Int, limit: Int) -> [CrashRecorder.Fault] {
        func error(_ ordinal: Int) -> Errno { ordinal % 2 == 1 ? .ioError : .noSpace }
        let flushFaults = (0..<flushes).map { CrashRecorder.Fault(kind: .flush, ordinal: $0 + 1, error: error($0 + 1)) }
        let writeFaults = (0..<writes).map { CrashRecorder.Fault(kind: .write, ordinal: $0 + 1, error: error($0 + 1)) }
        guard limit > 0, flushes + writes > limit else { return flushFaults + writeFaults }
        var random = SeededGenerator(seed: workload.seed &* 31 &+ UInt64(blockSize))
        let flushShare = min(flushes, limit / 2)
        let sampledFlushes = flushFaults.shuffled(using: &random).prefix(flushShare)
        let sampledWrites = writeFaults.shuffled(using: &random).prefix(limit - flushShare)
        return (sampledFlushes + sampledWrites).sorted { ($0.kind.rawValue, $0.ordinal) < ($1.kind.rawValue, $1.ordinal) }
    }

    /// Runs the workload with `fault` armed; nil when the fault never fired (the run issued fewer
    /// writes or flushes than the count said).
    func run(_ fault: CrashRecorder.Fault) throws -> [CrashFinding]? {
        let volume = try CrashVolume(blockSize: blockSize, failing: fault)
        let runner = volume.runner
        let recorder = volume.recorder
        var findings: [CrashFinding] = []
        func finding(_ key: String, _ message: String) { findings.append(CrashFinding(key: key, message: message)) }

        let next = workload.makeSource(blockSize)
        /// Files with a failed data write that no fsync of theirs has reported yet.
        var unreported: [Int: String] = [:]
        var ended = false
        while !ended {
            let step = next(runner.model) ?? .unmount
            if case .unmount = step { ended = true }
            let firedBefore = recorder.faultEventIndex != nil
            var thrown: Error?
            do { try runner.run(step) } catch { thrown = error }
            let text = runner.log.last?.text ?? "\(step)"

            if !firedBefore, let faultIndex = recorder.faultEventIndex {
                let target = FaultTarget.of(recorder.events[faultIndex], model: runner.model)
                if CrashTestSettings.trace {
                    var bytesShown = ""
                    if case .failed(_, let write?) = recorder.events[faultIndex] {
                        bytesShown = " (\(write.bytes.count) bytes at \(write.offset): " + write.bytes.prefix(64).map { String(format: "%02x", $0) }.joined() + "...)"
                    }
                    print("\(fault) fired during '\(text)': \(target)\(bytesShown)")
                }
                if step.promisesDurability, thrown == nil {
                    finding("success despite a failure", "'\(text)' returned success although \(fault) (\(target)) failed during it")
                }
                switch target {
                case .metadata:
                    findings += checkShutdown(after: fault, target: target, during: text, runner: runner, recorder: recorder,
                                              faultIndex: faultIndex, unmounted: ended, unmountError: ended ? thrown : nil)
                    ended = true
                case .data(let file, _):
                    if step.fsyncTarget != file { unreported[file] = "\(fault) during '\(text)'" }
                case .unclassified:
                    break
                }
                // A step that changes the tree or data and failed: what it left is unknown to the
                // model beyond "begun", so the workload stops here.
                if thrown != nil && !step.promisesDurability { ended = true }
                continue
            }

            if let file = step.fsyncTarget, let failure = unreported[file] {
                if thrown == nil {
                    finding("fsync success after a failed data write",
                            "'\(text)' returned success although a data write of that file failed before it (\(failure)): " +
                            "the next fsync must report it")
                }
                unreported[file] = nil
            }
            if let thrown {
                if recorder.faultEventIndex == nil {
                    finding("failed without a fault", "'\(text)' threw \(thrown) before any fault was injected")
                }
                if !step.promisesDurability { ended = true }
            }
        }
        runner.abandon()  // a failed unmount leaves it mounted: a crash releases it
        if CrashTestSettings.trace {
            print("bs \(blockSize), \(workload), \(fault): the steps (flushes issued when each began):")
            for entry in runner.log { print("  [\(entry.began.flushes)] \(entry.text): \(entry.outcome)") }
        }
        guard recorder.faultEventIndex != nil else { return nil }
        return findings + checkRecoveredImage(volume.image, model: runner.model, crashAfter: Int.max, fsckFirst: false)
    }

    /// After a failed metadata write or flush: later requests get EIO, unmount fails saying so,
    /// and nothing more reaches the store.
    private func checkShutdown(after fault: CrashRecorder.Fault, target: FaultTarget, during text: String, runner: CrashWorkloadRunner,
                               recorder: CrashRecorder, faultIndex: Int, unmounted: Bool, unmountError: Error?) -> [CrashFinding] {
        var findings: [CrashFinding] = []
        let cause = "after \(fault) (\(target)) during '\(text)'"
        let failed = fault.kind == .flush ? "flush" : "metadata write"
        func expectEIO(_ what: String, _ body: () throws -> Void) {
            do {
                try body()
                findings.append(CrashFinding(key: "no shutdown after a failed \(failed): \(what)", message: "\(cause), \(what) succeeded: the volume must shut down (EIO for every later request)"))
            } catch let error as Errno where error == .ioError {
            } catch {
                findings.append(CrashFinding(key: "wrong error after a failed \(failed): \(what)", message: "\(cause), \(what) failed with \(error), not EIO"))
            }
        }
        func expectLostChanges(_ error: Error?) {
            guard let error else {
                return findings.append(CrashFinding(key: "unmount succeeded after a failed \(failed)", message: "\(cause), unmount succeeded: it must fail, saying changes were lost"))
            }
            if !"\(error)".lowercased().contains("lost") {
                findings.append(CrashFinding(key: "unmount message after a failed \(failed)", message: "\(cause), unmount failed with '\(error)', which does not say that changes were lost"))
            }
        }
        if !unmounted {
            expectEIO("a create") { try runner.run(.create(Self.probeID, in: 0, name: "after-fault", keepOpen: false)) }
            expectEIO("getattr of the root") { _ = try runner.fs?.getattr(FileSystem.rootInode) }
            var unmountError: Error?
            do { try runner.run(.unmount) } catch { unmountError = error }
            expectLostChanges(unmountError)
        } else {
            expectLostChanges(unmountError)
        }
        let later = recorder.eventCount - faultIndex - 1
        if later > 0 {
            findings.append(CrashFinding(key: "writes after a failed \(failed)",
                                         message: "\(cause), the engine issued \(later) more writes or flushes: nothing may be written or retried after a failed metadata write"))
        }
        return findings
    }
}
