import ExtentFS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The image-level fuzzer: damages whole small images (Mutator) and checks that fsck, a mount, a
// walk and a write workload survive each (ImageCheck, in a child process under a time and
// memory limit). Commands:
//
//   ImageFuzzer run [--seed N] [--cases N] [--seconds S] [--timeout S] [--failures DIR] [--verbose]
//       fixed-seed cases until the count or the time is reached; each failing image is saved in
//       DIR (sparse, .fzimg) with what was done to it; exits 1 if any failed. --verbose prints
//       every case's damage and outcome
//   ImageFuzzer replay FILE...     the regression corpus (.fzimg files); exits 1 if any fails
//   ImageFuzzer make SEED CASE FILE  case CASE of `run --seed SEED` saved as FILE (.fzimg), and
//                                  what was done to it: a case worth keeping that did not fail
//   ImageFuzzer check IMAGE        one image, in this process (what `run` runs in a child; a
//                                  trap shows Swift's backtrace)
//   ImageFuzzer expand FILE IMAGE  a .fzimg file back into a whole image
//   ImageFuzzer decoder-seeds DIR  the decoder fuzzer's seeds, cut from the base images

ChildCheck.limitMemory()
setvbuf(stdout, nil, _IOLBF, 0)
let arguments = Array(CommandLine.arguments.dropFirst())

func option(_ name: String, _ fallback: String) -> String {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("ImageFuzzer: \(message)\n".utf8))
    exit(2)
}

/// Scratch space for images: memory when the machine has it, since every case writes one.
func scratchDirectory() throws -> String {
    let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let path = base + "/extentfs-image-fuzz-\(getpid())"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

switch arguments.first {
case "check":
    guard arguments.count == 2 else { fail("usage: ImageFuzzer check IMAGE") }
    exit(ImageCheck.run(image: arguments[1]))

case "run":
    guard let seed = UInt64(option("--seed", "1")), let cases = Int(option("--cases", "100")),
          let seconds = Double(option("--seconds", "1e9")), let timeout = Double(option("--timeout", "30")) else {
        fail("usage: ImageFuzzer run [--seed N] [--cases N] [--seconds S] [--timeout S] [--failures DIR]")
    }
    let failures = option("--failures", FileManager.default.currentDirectoryPath + "/image-fuzz-failures")
    do {
        let scratch = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let summary = try FuzzRun(seed: seed, cases: cases, seconds: seconds, timeout: timeout,
                                  scratch: scratch, failures: failures, verbose: arguments.contains("--verbose")).run()
        print(summary.report)
        exit(summary.failures == 0 ? 0 : 1)
    } catch {
        fail("\(error)")
    }

case "replay":
    let files = Array(arguments.dropFirst())
    guard !files.isEmpty else { fail("usage: ImageFuzzer replay FILE...") }
    do {
        let scratch = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var failed = 0
        for file in files {
            let image = scratch + "/replay.img"
            let bytes = try SparseImage.decode(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            try Data(bytes).write(to: URL(fileURLWithPath: image))
            let (verdict, output) = try ChildCheck.run(image: image, timeout: Double(option("--timeout", "30")) ?? 30)
            print("\(file): \(verdict)")
            if verdict.isFailure {
                failed += 1
                print(output.split(separator: "\n").suffix(15).map { "    " + $0 }.joined(separator: "\n"))
            }
        }
        print("replayed \(files.count) images, \(failed) failed")
        exit(failed == 0 ? 0 : 1)
    } catch {
        fail("\(error)")
    }

case "make":
    guard arguments.count == 4, let seed = UInt64(arguments[1]), let number = Int(arguments[2]) else {
        fail("usage: ImageFuzzer make SEED CASE FILE.fzimg")
    }
    do {
        let scratch = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (base, bytes, damage) = FuzzRun.damagedImage(seed: seed, number: number, images: try BaseImages.make(in: scratch))
        try Data(SparseImage.encode(bytes)).write(to: URL(fileURLWithPath: arguments[3]))
        print("base \(base.name); \(damage)")
    } catch {
        fail("\(error)")
    }

case "expand":
    guard arguments.count == 3 else { fail("usage: ImageFuzzer expand FILE.fzimg IMAGE") }
    do {
        let bytes = try SparseImage.decode(Array(try Data(contentsOf: URL(fileURLWithPath: arguments[1]))))
        try Data(bytes).write(to: URL(fileURLWithPath: arguments[2]))
    } catch {
        fail("\(error)")
    }

case "decoder-seeds":
    guard arguments.count == 2 else { fail("usage: ImageFuzzer decoder-seeds DIR") }
    do {
        let scratch = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let written = try DecoderSeeds.write(into: arguments[1], images: try BaseImages.make(in: scratch))
        print("wrote \(written) seeds into \(arguments[1])")
    } catch {
        fail("\(error)")
    }

default:
    fail("usage: ImageFuzzer run|replay|make|check|expand|decoder-seeds ... (see the top of Tests/ImageFuzzer/main.swift)")
}
