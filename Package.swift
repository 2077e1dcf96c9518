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

let package = Package(
    name: "dmsnap",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "DMSnap", targets: ["DMSnap"]),
        .executable(name: "dmsnap", targets: ["dmsnap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // The only C boundary: libdevmapper, libblkid and the fs-freeze ioctls.
        .target(
            name: "CDeviceMapper",
            linkerSettings: [.linkedLibrary("devmapper"), .linkedLibrary("blkid")]
        ),
        .target(
            name: "DMSnap",
            dependencies: [
                "CDeviceMapper",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "dmsnap",
            dependencies: [
                "DMSnap",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: staticSwift
        ),
        // Small library-level driver the kernel suite and the benchmark use to call DMSnap directly.
        .executableTarget(
            name: "dmsnap-probe",
            dependencies: ["DMSnap"],
            linkerSettings: staticSwift
        ),
        .testTarget(name: "DMSnapTests", dependencies: ["DMSnap"]),
    ],
    swiftLanguageModes: [.v6]
)
