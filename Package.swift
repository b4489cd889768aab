// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .executable(name: "sluice-broker", targets: ["sluice-broker"]),
        .library(name: "Streaming", targets: ["Streaming"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CPrefetch"),
        .systemLibrary(name: "CASCIIScan"),
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(
            name: "KafkaIO",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(name: "CCRC32C"),
        .target(name: "Storage", dependencies: ["CCRC32C"], swiftSettings: swiftSettings),
        .target(name: "StreamEngine", dependencies: ["CASCIIScan", "CPrefetch"], swiftSettings: swiftSettings),
        .target(name: "SampleData", swiftSettings: swiftSettings),
        .target(
            name: "Streaming",
            dependencies: [
                "KafkaIO", "Storage", "StreamEngine",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "CMalloc", "Streaming", "StreamEngine", "Storage", "KafkaIO", "SampleData",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sluice-broker",
            dependencies: ["KafkaIO"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sluice-microbench",
            dependencies: ["Storage", "StreamEngine", "SampleData"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "KafkaIOTests", dependencies: ["KafkaIO"], swiftSettings: swiftSettings),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "SampleData"], swiftSettings: swiftSettings),
        .testTarget(name: "StreamEngineTests", dependencies: ["StreamEngine", "SampleData"], swiftSettings: swiftSettings),
        .testTarget(
            name: "StreamingTests",
            dependencies: ["Streaming", "KafkaIO", "Storage", "StreamEngine", "SampleData"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SluiceTests", dependencies: ["KafkaIO", "Storage", "StreamEngine", "Streaming", "SampleData"], swiftSettings: swiftSettings),
    ]
)
