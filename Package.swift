// swift-tools-version: 6.1
import PackageDescription

// The library depends on the toolchain only: the stdlib, Synchronization, Glibc and our C shim.
let package = Package(
    name: "Kyoto",
    products: [
        .library(name: "Kyoto", targets: ["Kyoto"]),
        .library(name: "KyotoExecutor", targets: ["KyotoExecutor"]),
        .library(name: "KyotoSync", targets: ["KyotoSync"]),
        .library(name: "KyotoChannels", targets: ["KyotoChannels"]),
        .library(name: "KyotoActors", targets: ["KyotoActors"]),
        .executable(name: "kyoto-tour", targets: ["KyotoTour"]),
        .executable(name: "pipeline-demo", targets: ["PipelineDemo"]),
        .executable(name: "blocking-demo", targets: ["BlockingDemo"]),
        .executable(name: "localset-demo", targets: ["LocalSetDemo"]),
        .executable(name: "main-actor-demo", targets: ["MainActorDemo"]),
        .executable(name: "shutdown-demo", targets: ["ShutdownDemo"]),
    ],
    targets: [
        .target(
            name: "CKyoto",
            path: "Sources/CKyoto",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(name: "KyotoExecutor", dependencies: ["CKyoto"], path: "Sources/Executor"),
        .target(name: "KyotoSync", dependencies: ["KyotoExecutor", "CKyoto"], path: "Sources/Sync"),
        .target(name: "KyotoChannels", dependencies: ["KyotoSync", "KyotoExecutor"], path: "Sources/Channels"),
        .target(name: "KyotoActors", dependencies: ["KyotoExecutor", "KyotoChannels"], path: "Sources/Actors"),
        .target(
            name: "Kyoto",
            dependencies: ["KyotoExecutor", "KyotoSync", "KyotoChannels", "KyotoActors"],
            path: "Sources/Kyoto"
        ),
        .executableTarget(name: "KyotoTour", dependencies: ["Kyoto"], path: "Examples/KyotoTour"),
        .executableTarget(name: "PipelineDemo", dependencies: ["Kyoto"], path: "Examples/PipelineDemo"),
        .executableTarget(name: "BlockingDemo", dependencies: ["Kyoto"], path: "Examples/BlockingDemo"),
        .executableTarget(name: "LocalSetDemo", dependencies: ["Kyoto"], path: "Examples/LocalSetDemo"),
        .executableTarget(name: "MainActorDemo", dependencies: ["Kyoto"], path: "Examples/MainActorDemo"),
        .executableTarget(name: "ShutdownDemo", dependencies: ["Kyoto"], path: "Examples/ShutdownDemo"),
        // A synchronous main for the `runMain` tests (a test process has an async main).
        .executableTarget(name: "RunMainHost", dependencies: ["KyotoExecutor"], path: "Tests/RunMainHost"),
        .testTarget(name: "KyotoExecutorTests", dependencies: ["KyotoExecutor", "CKyoto"]),
        .testTarget(name: "KyotoSyncTests", dependencies: ["KyotoSync", "KyotoExecutor"]),
        .testTarget(name: "KyotoChannelsTests", dependencies: ["KyotoChannels", "KyotoSync", "KyotoExecutor"]),
    ],
    swiftLanguageModes: [.v6]
)
