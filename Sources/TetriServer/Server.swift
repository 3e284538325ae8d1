import Hummingbird
import Logging
import ServiceLifecycle
import TetriCore

/// Builds the HTTP application around a round loop.
public enum Server {
    /// The application: routes, and a service that drains the loop on graceful shutdown
    /// (SIGTERM/SIGINT): the listener stops accepting, admitted jobs finish, devices stop.
    public static func application(
        routes: ImageRoutes, host: String, port: Int, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        routes.add(to: router)
        var app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "tetriserve"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        app.addServices(DrainService(loop: routes.loop))
        return app
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
