// swift-tools-version:6.0
import PackageDescription

// The executables carry the Swift runtime and FoundationEssentials inside them (static), so they
// run where no Swift toolchain is installed and start fast: under User-Mode Linux a dynamically
// linked dmsnap spent ~0.4 s in the loader before main (BENCHMARKS.md). The two archives named here
// are the parts of FoundationEssentials its static archive does not pull in by itself.
let staticSwift: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib"], .when(platforms: [.linux])),
    .linkedLibrary("_FoundationCollections", .when(platforms: [.linux])),
    .linkedLibrary("_FoundationCShims", .when(platforms: [.linux])),
]

let system = Target.Dependency.product(name: "SystemPackage", package: "swift-system")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")

// The layers, each a target, so the compiler checks who may use whom (README, "Layout"; the
// builds of scripts/test.sh and scripts/demo.sh pass --explicit-target-dependency-import-check
// error, which makes any import outside a target's dependencies a build error):
//
//   DMSnapModel ← DMSnapPlanning ←──────────┐
//        ↑                                   DMSnap ← DMSnapCLI (Sources/dmsnap) ← dmsnap
//        ├──── DMSnapKernel ← CDeviceMapper ─┤   ↑
//        └──── DMSnapStore ──────────────────┘   DMSnapTesting ← dmsnap-test, dmsnap-probe, tests
let package = Package(
    name: "dmsnap",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "DMSnap", targets: ["DMSnap"]),
        .executable(name: "dmsnap", targets: ["dmsnap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        // The only C boundary: libdevmapper, libblkid, the ioctls Swift cannot spell, and the
        // streams of `dmsnap export` (libzstd, zlib, libcrypto's SHA-256).
        .target(
            name: "CDeviceMapper",
            linkerSettings: [.linkedLibrary("devmapper"), .linkedLibrary("blkid"), .linkedLibrary("zstd"),
                             .linkedLibrary("z"), .linkedLibrary("crypto")]
        ),
        // Values only: names, sizes, typed tables, statuses, the persisted set. No I/O.
        .target(name: "DMSnapModel", dependencies: [system]),
        // Request + kernel view → plan of steps with compensations, or a refusal. No I/O.
        .target(name: "DMSnapPlanning", dependencies: ["DMSnapModel"]),
        // The kernel: device-mapper, block devices, filesystems. The C boundary's only user.
        .target(name: "DMSnapKernel", dependencies: ["DMSnapModel", "CDeviceMapper", system, logging]),
        // Set descriptions on disk and the command lock.
        .target(name: "DMSnapStore", dependencies: ["DMSnapModel", system]),
        // The library users import: manager, executor, reading the kernel view.
        .target(
            name: "DMSnap",
            dependencies: ["DMSnapModel", "DMSnapPlanning", "DMSnapKernel", "DMSnapStore", logging]
        ),
        // Test doubles: an in-memory kernel, a memory store, fault injection. Never in the product.
        .target(name: "DMSnapTesting", dependencies: ["DMSnap", logging]),
        // The command-line interface: one file per subcommand; parse, call the library, print.
        .target(
            name: "DMSnapCLI",
            dependencies: ["DMSnap", .product(name: "ArgumentParser", package: "swift-argument-parser"), logging],
            path: "Sources/dmsnap"
        ),
        // The shipped executable.
        .executableTarget(name: "dmsnap", dependencies: ["DMSnapCLI"], path: "Sources/dmsnap-main",
                          linkerSettings: staticSwift),
        // The same commands plus the fault-injection hook, for the kernel suite. Never installed.
        .executableTarget(name: "dmsnap-test", dependencies: ["DMSnap", "DMSnapCLI", "DMSnapTesting"],
                          linkerSettings: staticSwift),
        // Drives the library directly for the kernel suite and the benchmark's kernel floors.
        .executableTarget(name: "dmsnap-probe", dependencies: ["DMSnap", "DMSnapTesting", logging],
                          linkerSettings: staticSwift),
        .testTarget(name: "DMSnapTests", dependencies: [
            "DMSnapModel", "DMSnapPlanning", "DMSnapKernel", "DMSnapStore", "DMSnap", "DMSnapTesting", "DMSnapCLI",
            system, logging,
        ]),
    ],
    swiftLanguageModes: [.v6]
)
