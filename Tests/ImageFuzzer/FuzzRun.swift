import Foundation

/// `ImageFuzzer run`: cases numbered from 0, each a base image damaged by a Mutator seeded with
/// (seed, case), so a case can be made again from its two numbers; each checked in a child.
struct FuzzRun {
    var seed: UInt64
    var cases: Int
    var seconds: Double
    var timeout: Double
    var scratch: String
    var failures: String
    /// Print every case's damage and outcome, not only the failures.
    var verbose = false

    struct Summary {
        var cases = 0
        var failures = 0
        var refused = 0
        var mounted = 0
        var elapsed = 0.0
        var slowest = 0.0

        var report: String {
            "image fuzzer: \(cases) cases in \(String(format: "%.1f", elapsed)) s " +
                "(\(refused) refused by mount, \(mounted) mounted and used, slowest \(String(format: "%.2f", slowest)) s), \(failures) failures"
        }
    }

    /// Case `number` of a run with `seed`: which base image, damaged how.
    static func damagedImage(seed: UInt64, number: Int, images: [BaseImages.Image]) -> (base: BaseImages.Image, bytes: [UInt8], damage: String) {
        var mutator = Mutator(seed: seed &* 1_000_003 &+ UInt64(number))
        let base = images[mutator.random.below(images.count)]
        var bytes = base.bytes
        let damage = mutator.mutate(&bytes)
        return (base, bytes, damage)
    }

    func run() throws -> Summary {
        let started = Date()
        let images = try BaseImages.make(in: scratch)
        var summary = Summary()
        for number in 0..<cases where Date().timeIntervalSince(started) < seconds {
            let (base, bytes, damage) = FuzzRun.damagedImage(seed: seed, number: number, images: images)
            let path = scratch + "/case.img"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let caseStarted = Date()
            let (verdict, output) = try ChildCheck.run(image: path, timeout: timeout)
            summary.slowest = max(summary.slowest, Date().timeIntervalSince(caseStarted))
            summary.cases += 1
            switch verdict {
            case .fine(let outcome):
                if outcome.hasPrefix("outcome: refused") { summary.refused += 1 } else { summary.mounted += 1 }
                if verbose { print("case \(number): base \(base.name); \(damage)\n    \(outcome)") }
            default:
                summary.failures += 1
                let name = "image-seed\(seed)-case\(number)"
                try FileManager.default.createDirectory(atPath: failures, withIntermediateDirectories: true)
                try Data(SparseImage.encode(bytes)).write(to: URL(fileURLWithPath: "\(failures)/\(name).\(SparseImage.fileExtension)"))
                let note = "base \(base.name); \(damage)\n\(verdict)\n\(output)"
                try Data(note.utf8).write(to: URL(fileURLWithPath: "\(failures)/\(name).txt"))
                print("case \(number): \(verdict)\n    base \(base.name); \(damage)\n    saved \(failures)/\(name).\(SparseImage.fileExtension)")
            }
        }
        summary.elapsed = Date().timeIntervalSince(started)
        return summary
    }
}
