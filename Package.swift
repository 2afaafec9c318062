// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "extentfs",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "extentfs", targets: ["extentfs"]),
        .library(name: "ExtentFS", targets: ["ExtentFS"]),
        .library(name: "ExtentFSCore", targets: ["ExtentFSCore"]),
        // LD_PRELOAD library: standard calls -> extentfs ioctls (.build/release/libExtentFSPreload.so).
        .library(name: "ExtentFSPreload", type: .dynamic, targets: ["CExtentFSPreload"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // libfuse3 through pkg-config, with a header-only shim for macros and versioned symbols.
        .systemLibrary(
            name: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // libnbd through pkg-config: the engine's NBD backing store (Device/NBDStore.swift).
        .systemLibrary(
            name: "CNBD",
            pkgConfig: "libnbd",
            providers: [.apt(["libnbd-dev"])]
        ),
        // The adapter's transport under libfuse: sees each raw request and negotiates what
        // libfuse 3.14 does not know (FUSE_HANDLE_KILLPRIV_V2).
        .target(name: "CFuseTransport", dependencies: ["CFuse"]),
        // extentfs_ioctl.h: the ioctl numbers and argument structs, for the adapter and for users.
        .target(name: "CExtentFSIoctl"),
        .target(name: "CExtentFSPreload", dependencies: ["CExtentFSIoctl"], linkerSettings: [.linkedLibrary("dl")]),
        // The on-disk format and metadata core that mkfs, fsck and the engine share (as libxfs):
        // the copy-on-write B+tree (docs/TREES.md), the byte codec, the superblock, the allocator
        // and reference counts, the running transaction, file extents and extent maps, directory
        // entries and the name hash, the inode image, its value types, the checkpoint and log
        // record codecs, the metadata tree's schema (docs/TREES.md, step 6, says what is still in
        // the engine and why). No page cache, no FUSE, no logging; `package` access for what the
        // engine, the tools and the tests use.
        // CRC-32C with the CPU's instruction where there is one (every node read checks one).
        .target(name: "CCRC32C"),
        .target(
            name: "ExtentFSCore",
            dependencies: ["CCRC32C", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The engine: no FUSE in here, so mkfs, fsck, tests and the daemon share it.
        .target(
            name: "ExtentFS",
            dependencies: [
                "ExtentFSCore",
                "CNBD",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The adapter: fuse_lowlevel_ops -> engine calls.
        .target(
            name: "ExtentFSFuse",
            dependencies: [
                "CFuse", "CFuseTransport", "CExtentFSIoctl", "ExtentFS", "ExtentFSCore",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What Swift cannot call directly for the exerciser's mount mode: variadic ioctl() with the
        // extentfs argument structs, and mmap's MAP_FAILED.
        .target(name: "CExerciseSyscalls", dependencies: ["CExtentFSIoctl"]),
        // fsx for extentfs: random operations checked against an in-memory model, in-process or
        // through a mount; replay files and shrinking on failure.
        .target(
            name: "ExtentFSExercise",
            dependencies: [
                "ExtentFS", "ExtentFSCore", "CExerciseSyscalls",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "extentfs",
            dependencies: [
                "ExtentFS", "ExtentFSCore", "ExtentFSFuse", "CExtentFSIoctl", "ExtentFSExercise",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The image-level fuzzer: damages whole small images and checks that fsck, a mount, a walk
        // and a write workload survive each, in child processes (Tests/ImageFuzzer/main.swift).
        // Built with everything, so that the tests can run it; uses the engine's public API only.
        .executableTarget(
            name: "ImageFuzzer",
            dependencies: ["ExtentFS", "ExtentFSCore", "ExtentFSExercise"],
            path: "Tests/ImageFuzzer"
        ),
        // Test-only: the heap bytes in use, for the tests that measure what metadata costs in memory.
        .target(name: "CHeapProbe", path: "Tests/CHeapProbe"),
        .testTarget(name: "ExtentFSCoreTests", dependencies: ["ExtentFSCore"],
                    swiftSettings: [.swiftLanguageMode(.v6)]),
        // Test-only: a real nbdkit (memory or file plugin, Unix socket or TCP) the NBD tests
        // start, kill, stall and start again.
        .target(name: "NBDTestServer", path: "Tests/NBDTestServer", swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "ExtentFSTests", dependencies: ["ExtentFS", "ExtentFSCore", "CHeapProbe", "NBDTestServer"]),
        // Replays/ holds sequences that once failed; the tests read them from the source tree.
        .testTarget(name: "ExerciseTests", dependencies: ["ExtentFSExercise", "ExtentFS"], exclude: ["Replays"]),
        // Test-only: what the integration tests do as another user, in a forked child (C, since
        // a child forked from the test process may not run Swift).
        .target(name: "CIntegrationHelpers", dependencies: ["CExtentFSIoctl"], path: "Tests/CIntegrationHelpers"),
        .testTarget(
            name: "IntegrationTests",
            // CExerciseSyscalls: the extentfs ioctls, which Swift cannot call through variadic ioctl().
            dependencies: ["ExtentFS", "CExerciseSyscalls", "CIntegrationHelpers", "NBDTestServer",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
    ],
    swiftLanguageModes: [.v5]
)

// The coverage-guided fuzzer of the decoders. Its main is libFuzzer's, so it exists only in the
// build scripts/fuzz.sh makes: EXTENTFS_FUZZ=1 swift build --sanitize=fuzzer (debug, so that
// @testable reaches the decoders).
if Context.environment["EXTENTFS_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "DecoderFuzzer", dependencies: ["ExtentFS"], path: "Tests/DecoderFuzzer",
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
