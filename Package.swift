// swift-tools-version:6.0
import PackageDescription

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
            ]
        ),
        // Small library-level driver the kernel suite and the benchmark use to call DMSnap directly.
        .executableTarget(
            name: "dmsnap-probe",
            dependencies: ["DMSnap"]
        ),
        .testTarget(name: "DMSnapTests", dependencies: ["DMSnap"]),
    ],
    swiftLanguageModes: [.v6]
)
