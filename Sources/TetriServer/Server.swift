import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import TetriCore

/// Builds the HTTP application around a round loop.
public enum Server {
    /// The application: the request guard, the routes (HEAD answered on every GET route), and the
    /// connection limits of `options`. With `drainOnShutdown`, a service drains the loop once the
    /// application shuts down (tests); ``service(_:routes:options:logger:)`` instead drains
    /// while the listener still answers, as `serve` does.
    public static func application(
        routes: ImageRoutes, host: String, port: Int, logger: Logger, options: HTTPOptions = .init(),
        drainOnShutdown: Bool = true, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: ServeRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(
            middleware: RequestGuard(
                lifecycle: routes.lifecycle, bindHost: host, allowedHosts: options.allowedHosts, logger: logger))
        routes.add(to: router)
        var configuration = ApplicationConfiguration(address: .hostname(host, port: port), serverName: "tetriserve")
        configuration.availableConnectionsDelegate = MaximumAvailableConnections(options.maxConnections)
        var app = Application(
            router: router,
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ConnectionHandler()], idleTimeout: TimeAmount(options.idleTimeout))),
            configuration: configuration,
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        if drainOnShutdown { app.addServices(DrainService(loop: routes.loop)) }
        return app
    }

    /// The whole server as one service group that handles SIGTERM and SIGINT: first the drain
    /// (new jobs get 503, status and content requests are still answered, admitted jobs finish
    /// or `drainTimeout` passes), then the devices stop, then the listener closes; connections
    /// still open `closeGrace` after that are closed.
    public static func service(
        _ app: some ApplicationProtocol, routes: ImageRoutes, options: HTTPOptions, logger: Logger
    ) -> ServiceGroup {
        ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: BoundedShutdown(app: app, grace: options.closeGrace, logger: logger)),
                    .init(
                        service: ListeningDrain(
                            loop: routes.loop, lifecycle: routes.lifecycle, timeout: options.drainTimeout,
                            logger: logger)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}

/// Waits for graceful shutdown, then lets admitted jobs finish and stops the devices.
struct DrainService: Service {
    let loop: RoundLoop

    func run() async throws {
        try? await gracefulShutdown()
        await loop.drain()
        await loop.backend.shutdown()
    }
}

/// The drain while the listener still answers: on graceful shutdown, refuses new jobs, waits for
/// the admitted ones (at most `timeout`), and stops the devices.
struct ListeningDrain: Service {
    let loop: RoundLoop
    let lifecycle: ServerLifecycle
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        lifecycle.startDraining()
        let load = await loop.load
        logger.info(
            "draining: no new jobs; waiting for admitted ones",
            metadata: ["waiting": "\(load.waiting)", "running": "\(load.running)", "timeout_s": "\(timeout)"])
        let loop = self.loop
        let timeout = self.timeout
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await loop.drain()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if finished {
            logger.info("drained: every admitted job finished")
        } else {
            let left = await loop.load
            logger.warning(
                "drain timeout passed; exiting with jobs unfinished",
                metadata: ["waiting": "\(left.waiting)", "running": "\(left.running)"])
        }
        await loop.backend.shutdown()
    }
}

/// Runs the application; once it is asked to shut down gracefully, gives its connections
/// `grace` to finish, then cancels it, which closes every connection still open (a client that
/// never completes its request cannot hold the process).
struct BoundedShutdown<App: ApplicationProtocol>: Service {
    let app: App
    let grace: Duration
    let logger: Logger

    func run() async throws {
        let app = self.app
        let grace = self.grace
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            group.addTask {
                try await gracefulShutdown()
                try await Task.sleep(for: grace)
                logger.info("closing the connections still open")
            }
            // The application ending (or the grace passing) ends both.
            try await group.next()
            group.cancelAll()
        }
    }
}
