import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// Whether the client of one connection has gone away (it closed its side, or the connection
/// failed). The synchronous endpoint waits on it to cancel the jobs of a client that left.
public final class ConnectionWatch: Sendable {
    private struct State {
        var gone = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var isGone: Bool { state.withLock { $0.gone } }

    func markGone() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.gone else { return [] }
            s.gone = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    /// Returns once the client is gone, or as soon as the calling task is cancelled.
    public func waitUntilGone() async {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.gone || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// The server's own handler on every HTTP/1 connection, between the HTTP codec and Hummingbird.
/// It passes every request part through unchanged (so pipelined requests are never consumed by
/// anyone but the request loop), and:
///
/// - tells the connection's ``ConnectionWatch`` when the client closes its side or the
///   connection fails;
/// - closes the connection after any response that says `Connection: close`, and makes every
///   response after which the connection closes say so: one whose request asked for it, and one
///   written after the server began shutting down. A handler that answers before reading the
///   whole body (413, 408, a malformed body) sets the header itself.
/// - closes gently: after such a response it stops sending (FIN), discards what the client still
///   sends, and closes fully when the client closes or after `linger`, so that a client still
///   sending a body reads the response instead of a reset.
final class ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let watch = ConnectionWatch()
    let linger: TimeAmount
    /// For each request read and not yet answered, in order: whether it asked to close.
    private var requestsAskingClose: [Bool] = []
    private var quiescing = false
    private var inputClosed = false
    /// The response being written ends the connection.
    private var closeAfterResponse = false
    /// That response has been written: nothing more is sent, and input is discarded.
    private var closing = false

    init(linger: TimeAmount = .seconds(2)) {
        self.linger = linger
    }

    /// Puts an ``HTTP10CloseMarker`` right after the pipeline's HTTP/1 request decoder: the
    /// conversion to HTTP types further on drops the request's HTTP version.
    func handlerAdded(context: ChannelHandlerContext) {
        let operations = context.pipeline.syncOperations
        if let decoder = try? operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
            try? operations.addHandler(HTTP10CloseMarker(), position: .after(decoder))
        }
    }

    /// The watch of the connection `channel` serves, or nil when it has no such handler.
    static func watch(of channel: any Channel) async -> ConnectionWatch? {
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ConnectionHandler.self).watch
        }.get()
    }

    static func saysClose(_ fields: HTTPFields) -> Bool {
        fields[values: .connection].contains { value in
            value.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if closing { return }
        if case .head(let head) = unwrapInboundIn(data) {
            requestsAskingClose.append(Self.saysClose(head.headerFields))
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            inputClosed = true
            watch.markGone()
            if closing { context.close(promise: nil) }
        } else if event is ChannelShouldQuiesceEvent {
            quiescing = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.markGone()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if closing {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.kind != .informational:
            let asked = requestsAskingClose.first ?? false
            if asked || quiescing || Self.saysClose(head.headerFields) {
                head.headerFields[.connection] = "close"
                closeAfterResponse = true
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end:
            if !requestsAskingClose.isEmpty { requestsAskingClose.removeFirst() }
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            closing = true
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            let linger = self.linger
            let inputClosed = self.inputClosed
            written.futureResult.whenComplete { _ in
                let context = loopContext.value
                if inputClosed {
                    context.close(promise: nil)
                    return
                }
                context.close(mode: .output, promise: nil)
                context.eventLoop.assumeIsolated().scheduleTask(in: linger) { context.close(promise: nil) }
            }
        default:
            context.write(data, promise: promise)
        }
    }
}

/// Marks an HTTP/1.0 request that does not ask for keep-alive (HTTP/1.0 closes by default) with
/// `Connection: close` while its version is still known, so that ``ConnectionHandler``'s one
/// closing rule covers it. HTTP/1.1 requests pass untouched: they say `close` themselves.
final class HTTP10CloseMarker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data), head.version == .http1_0, !head.isKeepAlive {
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}

/// The request context of the server's routes: Hummingbird's basic context plus the connection,
/// so that a route can watch its client (see ``ConnectionWatch``).
public struct ServeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The watch of this request's connection, when it has one.
    func connectionWatch() async -> ConnectionWatch? {
        await ConnectionHandler.watch(of: channel)
    }
}
