// swift-tools-version: 6.1
import PackageDescription

// Kyoto's benchmarks: a separate package so the library itself depends on the toolchain only.
// `swift run -c release --package-path Benchmarks kyoto-bench`
let package = Package(
    name: "KyotoBenchmarks",
    products: [
        .executable(name: "kyoto-bench", targets: ["KyotoBench"])
    ],
    dependencies: [
        .package(name: "Kyoto", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    ],
    targets: [
        // malloc & co. defined in the executable: they interpose glibc's for every shared library and count calls.
        .target(name: "CAllocCounter", path: "Sources/CAllocCounter", cSettings: [.define("_GNU_SOURCE")]),
        .executableTarget(
            name: "KyotoBench",
            dependencies: [
                "CAllocCounter",
                .product(name: "KyotoExecutor", package: "Kyoto"),
                .product(name: "KyotoSync", package: "Kyoto"),
                .product(name: "KyotoChannels", package: "Kyoto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            path: "Sources/KyotoBench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
