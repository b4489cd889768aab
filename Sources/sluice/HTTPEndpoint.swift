import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A small HTTP/1.1 server for the service's GET routes (health, metrics, the status page and API), run as a
/// service.
///
/// Connections are bounded so that clients cannot take the descriptors the WAL and checkpoints need: one idle for
/// ``idleTimeout`` is closed, and beyond ``maximumConnections`` a new connection is closed at once. A request
/// target longer than ``maximumTargetBytes`` gets 414, a method other than GET 405, an unknown path 404.
final class HTTPEndpoint: Service {
    /// How long a connection may stay without a request.
    static let idleTimeout = TimeAmount.seconds(10)
    /// Open connections at most.
    static let maximumConnections = 128
    /// The longest request target (path and query) answered.
    static let maximumTargetBytes = 2048

    /// A request: its path (still percent-encoded) and query parameters (decoded).
    struct Request: Sendable {
        var path: Substring
        var query: [String: String]
    }

    /// A response: status, body and content type, and where to look instead (a redirect's `Location`).
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: String
        var contentType = "text/plain; charset=utf-8"
        var location: String?

        /// A plain-text error with its reason.
        static func error(_ status: HTTPResponseStatus, _ reason: String) -> Response {
            Response(status: status, body: reason + "\n")
        }
    }

    typealias Handler = @Sendable (Request) -> Response

    /// Routes by exact path, then by prefix (a prefix takes every longer path that starts with it).
    struct Routes: Sendable {
        var exact: [String: Handler]
        var prefixes: [String: Handler] = [:]

        func handler(for path: Substring) -> Handler? {
            if let handler = exact[String(path)] { return handler }
            return prefixes.first { path.hasPrefix($0.key) && path.count > $0.key.count }?.value
        }
    }

    private let host: String
    private let port: Int
    private let routes: Routes
    private let logger: Logger

    init(host: String, port: Int, routes: Routes, logger: Logger) {
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

    private let routes: HTTPEndpoint.Routes
    private var head: HTTPRequestHead?

    init(routes: HTTPEndpoint.Routes) {
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
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            let keepAlive = head.isKeepAlive
            let response = respond(to: head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: String(response.body.utf8.count))
            if let location = response.location { headers.add(name: "Location", value: location) }
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    private func respond(to head: HTTPRequestHead) -> HTTPEndpoint.Response {
        guard head.method == .GET else { return .error(.methodNotAllowed, "only GET is served") }
        guard head.uri.utf8.count <= HTTPEndpoint.maximumTargetBytes else {
            return .error(.uriTooLong, "the request target is longer than \(HTTPEndpoint.maximumTargetBytes) bytes")
        }
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let handler = routes.handler(for: parts[0]) else { return .error(.notFound, "not found") }
        var query: [String: String] = [:]
        for pair in parts.dropFirst().first?.split(separator: "&") ?? [] {
            let field = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentDecoding.string(field[0]), let value = PercentDecoding.string(field.dropFirst().first ?? "") else {
                return .error(.badRequest, "the query is not valid percent-encoded UTF-8")
            }
            query[name] = value
        }
        return handler(HTTPEndpoint.Request(path: parts[0], query: query))
    }
}

/// Percent-decoding of URL components (`+` in a query is a space).
enum PercentDecoding {
    /// The decoded text, or nil if an escape is malformed or the bytes are not UTF-8.
    static func string(_ encoded: Substring, plusIsSpace: Bool = true) -> String? {
        var bytes: [UInt8] = []
        var iterator = encoded.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
