import Foundation
@testable import ExtentFS

/// Runs a workload on a recording store, then rebuilds the image at every crash point and checks
/// it: for every flush k (0: before the first), the image with none of the writes in flight after
/// flush k, with all of them, and with random subsets of them, some torn (only some sectors).
/// Each subset is drawn from a generator seeded by workload, block size, k and subset number, so
/// a failing crash point comes back on every run. On NBD (`backing`), the server's durable image
/// at every crash point is checked too (CrashServerCopies).
struct CrashReplay {
    let workload: CrashWorkload
    let blockSize: Int
    let subsets: Int
    var backing: CrashBacking = .file

    func run(into report: CrashReport) throws {
        let scope = "bs \(blockSize), \(workload)\(volumeIsOnNBD ? ", on NBD" : "")"
        TrapReporter.running("\(scope): recording the workload")
        let volume = try CrashVolume(blockSize: blockSize, backing: backing)
        let runner = volume.runner
        let next = workload.makeSource(blockSize)
        var failure: String?
        while failure == nil, let step = next(runner.model) {
            do { try runner.run(step) } catch { failure = "'\(runner.describe(step))' threw \(error)" }
        }
        if failure == nil {
            do { try runner.run(.unmount) } catch { failure = "unmount threw \(error)" }
        }
        runner.abandon()
        volume.serverCopies?.finish()
        if let failure {
            // Crash points up to here are still checked: what was recorded is a valid history.
            report.add([CrashFinding(key: "workload failed", message: "the workload failed with no fault injected: \(failure)")],
                       blockSize: blockSize, context: scope)
        }

        if CrashTestSettings.trace {
            print("\(scope): the steps (flushes issued when each began):")
            for entry in runner.log { print("  [\(entry.began.flushes)] \(entry.text): \(entry.outcome)") }
        }
        let builder = CrashImageBuilder(base: volume.base, events: volume.recorder.events)
        let markers = volume.recorder.markers
        let image = volume.scratch("crash.img")
        for k in 0...builder.flushCount {
            let pending = builder.pendingWrites(afterFlush: k)
            let (issuer, after) = runner.steps(aroundFlush: k)
            let since = after.map { "'\($0.text)'" }
            let steps = (issuer.map { "flush \(k) issued by '\($0.text)'" } ?? "before any flush") + "; steps begun after it: " +
                (since.isEmpty ? "none" : (since.count > 4 ? "..., " : "") + since.suffix(4).joined(separator: ", "))
            let lastPromise = markers.last { $0.flushes <= k }?.text ?? "none"
            for (variant, applied) in variants(k: k, pending: pending, builder: builder) {
                let context = "\(scope), crash after flush \(k) of \(builder.flushCount) with \(variant) " +
                    "(\(steps); the last promise before the crash: '\(lastPromise)')"
                TrapReporter.running(context)
                try builder.build(at: image, flush: k, pending: applied)
                report.add(checkRecoveredImage(image, model: runner.model, crashAfter: k, fsckFirst: true), blockSize: blockSize, context: context)
            }
            if let copies = volume.serverCopies {
                let context = "\(scope), crash after flush \(k) of \(builder.flushCount), the server's durable image " +
                    "(\(steps); the last promise before the crash: '\(lastPromise)')"
                TrapReporter.running(context)
                report.add(try copies.check(flush: k, builder: builder, model: runner.model, expected: image,
                                            copyImage: volume.scratch("server.img")),
                           blockSize: blockSize, context: context)
            }
        }
    }

    private var volumeIsOnNBD: Bool {
        if case .nbd = backing { return true }
        return false
    }

    /// None of the writes in flight, all of them, and `subsets` random subsets with tears.
    private func variants(k: Int, pending: Range<Int>, builder: CrashImageBuilder) -> [(String, [CrashImageBuilder.Applied])] {
        var variants: [(String, [CrashImageBuilder.Applied])] = [("none of the \(pending.count) writes in flight", [])]
        guard !pending.isEmpty else { return variants }
        variants.append(("all \(pending.count) writes in flight", pending.map { CrashImageBuilder.Applied(write: $0, sectors: nil) }))
        guard subsets > 0 else { return variants }
        for subset in 1...subsets {
            var random = SeededGenerator(seed: workload.seed &* 1_000_003 &+ UInt64(blockSize) &* 7919 &+ UInt64(k) &* 131 &+ UInt64(subset))
            var applied: [CrashImageBuilder.Applied] = []
            var described: [String] = []
            for write in pending where Bool.random(using: &random) {
                let sectors = CrashImageBuilder.sectorCount(of: builder.writes[write])
                if sectors > 1, Int.random(in: 0..<4, using: &random) == 0 {
                    let chosen = (0..<sectors).map { _ in Bool.random(using: &random) }
                    applied.append(CrashImageBuilder.Applied(write: write, sectors: chosen))
                    described.append("\(write - pending.lowerBound) torn (\(chosen.filter { $0 }.count) of \(sectors) sectors)")
                } else {
                    applied.append(CrashImageBuilder.Applied(write: write, sectors: nil))
                    described.append("\(write - pending.lowerBound)")
                }
            }
            let list = described.prefix(12).joined(separator: ", ") + (described.count > 12 ? ", ..." : "")
            variants.append(("random subset #\(subset) of the \(pending.count) writes in flight: [\(list)]", applied))
        }
        return variants
    }
}
