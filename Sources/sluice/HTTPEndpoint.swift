import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A small HTTP/1.1 server for `/healthz`, `/readyz` and `/metrics`, run as a service.
///
/// Connections are bounded so that clients cannot take the descriptors the WAL and checkpoints need: one idle for
/// ``idleTimeout`` is closed, and beyond ``maximumConnections`` a new connection is closed at once.
final class HTTPEndpoint: Service {
    /// How long a connection may stay without a request.
    static let idleTimeout = TimeAmount.seconds(10)
    /// Open connections at most.
    static let maximumConnections = 128

    /// A response: status and plain-text body.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: String
        var contentType = "text/plain; charset=utf-8"
    }

    private let host: String
    private let port: Int
    private let routes: [String: @Sendable () -> Response]
    private let logger: Logger

    init(host: String, port: Int, routes: [String: @Sendable () -> Response], logger: Logger) {
        self.host = host
        self.port = port
        self.routes = routes
        self.logger = logger
    }

    func run() async throws {
        let routes = self.routes
        let open = Atomic<Int>(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard open.add(1, ordering: .relaxed).newValue <= Self.maximumConnections else {
                    open.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.subtract(1, ordering: .relaxed) }
                // The initializer runs on the channel's event loop, so the pipeline can be built synchronously.
                do {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(RouteHandler(routes: routes))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info("HTTP endpoint listening", metadata: ["http.host": "\(host)", "http.port": "\(channel.localAddress?.port ?? port)"])
        // Stay up until the whole service group has shut down, so metrics can be scraped to the end.
        try? await gracefulShutdown()
        try await channel.close()
    }
}

/// Answers each request from the route table.
private final class RouteHandler: ChannelInboundHandler, @unchecked Sendable {
    // Used only on its channel's event loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: [String: @Sendable () -> HTTPEndpoint.Response]
    private var path: String?
    private var keepAlive = false

    init(routes: [String: @Sendable () -> HTTPEndpoint.Response]) {
        self.routes = routes
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            let response = routes[path ?? ""]?() ?? HTTPEndpoint.Response(status: .notFound, body: "not found\n")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: String(response.body.utf8.count))
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}
