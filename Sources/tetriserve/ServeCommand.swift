import ArgumentParser
import DiTEngine
import Foundation
import Logging
import NIOCore
import NIOPosix
import TetriCore
import TetriServer
import TetriSim

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the OpenAI-compatible image API with deadline-aware step-level SP scheduling.",
        discussion: """
            Engines: 'cpu' runs the DiT on --workers CPU worker processes (profiled at start-up unless \
            --profile is given); 'simulated' rehearses a node from a profile: --gpus virtual devices that \
            take T(resolution, degree) per step, --time-scale times faster than real time (SLOs, deadlines \
            and latencies are then in virtual time). SIGTERM or SIGINT stops accepting requests and lets \
            admitted ones finish.
            """
    )

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(parsing: .unconditional, help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port: Int = 8080

    @Option(help: "Execution engine: cpu or simulated.")
    var engine: String = "cpu"

    // The engine-specific options have no declared default, so that a value the user set can be
    // told from the default and refused when the chosen engine does not use it.

    @Option(parsing: .unconditional, help: "CPU engine: worker processes (devices), one per core (default: 2).")
    var workers: Int?

    @Option(
        help: """
            CPU engine: model configuration with seeded weights (\(ModelConfig.named.keys.sorted().joined(separator: ", "))); \
            default: the shipped weights in models/ when found, else small.
            """)
    var model: String?

    @Option(help: "CPU engine: safetensors weights file to load (its metadata gives the model configuration).")
    var weights: String?

    @Option(
        name: .customLong("weights-seed"), parsing: .unconditional,
        help: "CPU engine: seed of the model's deterministic weights (default: 0).")
    var weightsSeed: UInt64?

    @Option(
        help: """
            Cost profile: \(Defaults.profileForms). CPU engine: skip start-up profiling and use this one (it \
            must match --model and --workers). Simulated engine: the node to rehearse (default: \(Defaults.profile)).
            """)
    var profile: String?

    @Option(
        name: .customLong("plan-margin"), parsing: .unconditional,
        help: "Plans aim to finish this fraction of the time left before each deadline (slack for timing noise).")
    var planMargin: Double = 0

    @Option(parsing: .unconditional, help: "Virtual devices of the simulated engine (default: the profile's).")
    var gpus: Int?

    @Option(
        name: .customLong("time-scale"), parsing: .unconditional,
        help: "Simulated engine: virtual time runs this many times faster (default: 1).")
    var timeScale: Double?

    @Option(help: "Scheduling policy: \(Policies.names.joined(separator: ", ")).")
    var policy: String = "tetriserve"

    @Option(
        parsing: .unconditional,
        help: """
            Step granularity of the round schedulers: ticks per round, at most half the tightest default SLO \
            (the smallest class's at --default-steps and --slo-scale) unless --uncapped-round.
            """)
    var granularity: Int = RoundScheduler.defaultGranularity

    @Flag(
        name: .customLong("uncapped-round"),
        help: "Keep granularity ticks per round even when a round exceeds half the tightest default SLO.")
    var uncappedRound = false

    @Flag(
        name: .customLong("no-admission"),
        help: "Turn off tetriserve's admission by look-ahead (requests that cannot all be met are no longer deferred).")
    var noAdmission = false

    @OptionGroup var reserve: SlackReserveOption

    @Flag(
        inversion: .prefixedNo,
        help: ArgumentHelp(
            "Re-estimate step times from the blocks run and re-plan with them when they drift more than 5% from "
                + "the profile (default: on with --engine cpu, off with --engine simulated, whose devices keep the "
                + "profile's times exactly)."))
    var calibrate: Bool?

    @Option(
        name: .customLong("max-queue"), parsing: .unconditional,
        help: "Requests waiting or running at most; more get 429.")
    var maxQueue: Int = 64

    @Flag(
        name: .customLong("reject-infeasible"),
        help: "Answer 422 to requests whose deadline no schedule can meet, instead of running them best effort.")
    var rejectInfeasible = false

    @Option(
        name: .customLong("slo-scale"), parsing: .unconditional, help: "Multiplier on the default per-resolution SLOs.")
    var sloScale: Double = 1

    @Option(
        name: .customLong("default-steps"), parsing: .unconditional,
        help: "Steps when a request gives no num_inference_steps.")
    var defaultSteps: Int = 50

    @Option(
        name: .customLong("api-key"),
        help: """
            Require 'Authorization: Bearer KEY' on /v1/ routes (repeatable; also TETRISERVE_API_KEYS, comma-separated). \
            Each key sees only its own jobs and request_ids.
            """)
    var apiKeys: [String] = []

    @Option(
        name: .customLong("result-ttl"), parsing: .unconditional,
        help: "Keep finished results (status and image) this many seconds; later they answer 410.")
    var resultTTL: Double = 600

    @Option(
        name: .customLong("result-memory"), parsing: .unconditional,
        help: "Keep finished results within this many MiB, evicting the oldest first (they then answer 410).")
    var resultMemory: Double = 512

    @Option(
        name: .customLong("drop-late-after"), parsing: .unconditional,
        help: """
            Fail a request that is still unfinished this many times its SLO after its deadline (status failed, \
            error_code deadline_exceeded; 504 on the synchronous endpoint). Default: never.
            """)
    var dropLateAfter: Double?

    @Option(
        name: .customLong("step-timeout"), parsing: .unconditional,
        help: """
            CPU engine: seconds a worker may take for one step before it is treated as hung, killed and \
            replaced (the request continues elsewhere). Default: 5x the profiled step time plus 30 s.
            """)
    var stepTimeout: Double?

    @Option(
        name: .customLong("idle-timeout"), parsing: .unconditional,
        help: "Seconds a connection may send nothing (unfinished headers or body, idle keep-alive) before it is closed."
    )
    var idleTimeout: Double = 60

    @Option(
        name: .customLong("body-timeout"), parsing: .unconditional,
        help: "Seconds a request body may take to arrive in full (408 after).")
    var bodyTimeout: Double = 30

    @Option(
        name: .customLong("max-connections"), parsing: .unconditional,
        help: "Connections served at once; more wait in the backlog.")
    var maxConnections: Int = 256

    @Option(
        name: .customLong("drain-timeout"), parsing: .unconditional,
        help: "On SIGTERM/SIGINT, seconds to wait for admitted jobs (status and content stay readable) before exiting.")
    var drainTimeout: Double = 600

    @Option(
        name: .customLong("allowed-host"),
        help: """
            A Host name requests may use besides loopback names (repeatable). With a loopback --host only \
            loopback names are accepted otherwise (a guard against DNS rebinding).
            """)
    var allowedHosts: [String] = []

    @Option(
        name: .customLong("log-level"),
        help:
            "Log level on stderr: trace, debug, info (one line per request and lifecycle event), notice, warning, error, critical."
    )
    var logLevel: String = "info"

    func validate() throws {
        guard ["cpu", "simulated"].contains(engine) else {
            throw UserError("--engine must be cpu or simulated, got '\(engine)'")
        }
        guard port >= 0 && port < 65536 else { throw UserError("--port must be in 0...65535, got \(port)") }
        if let timeScale {
            guard timeScale > 0 && timeScale <= ServingClock.maxTimeScale else {
                throw UserError("--time-scale must be in (0, \(Int(ServingClock.maxTimeScale))], got \(timeScale)")
            }
        }
        // Options of the other engine would otherwise be accepted and ignored.
        if engine == "cpu" {
            guard timeScale == nil else { throw UserError("--time-scale applies to --engine simulated only") }
            guard gpus == nil else { throw UserError("--gpus applies to --engine simulated; use --workers") }
        } else {
            guard workers == nil else { throw UserError("--workers applies to --engine cpu; use --gpus") }
            guard model == nil else { throw UserError("--model applies to --engine cpu only") }
            guard weightsSeed == nil else { throw UserError("--weights-seed applies to --engine cpu only") }
            guard weights == nil else { throw UserError("--weights applies to --engine cpu only") }
            guard stepTimeout == nil else { throw UserError("--step-timeout applies to --engine cpu only") }
        }
        guard maxQueue >= 1 else { throw UserError("--max-queue must be >= 1, got \(maxQueue)") }
        guard sloScale > 0 && sloScale <= 1000 else {
            throw UserError("--slo-scale must be in (0, 1000], got \(sloScale)")
        }
        if let stepTimeout {
            guard stepTimeout > 0 && stepTimeout <= 86_400 else {
                throw UserError("--step-timeout must be in (0, 86400] seconds, got \(stepTimeout)")
            }
        }
        for (name, value) in [
            ("--idle-timeout", idleTimeout), ("--body-timeout", bodyTimeout), ("--drain-timeout", drainTimeout),
        ] {
            guard value > 0 && value <= 86_400 else {
                throw UserError("\(name) must be in (0, 86400] seconds, got \(value)")
            }
        }
        guard maxConnections >= 1 else { throw UserError("--max-connections must be >= 1, got \(maxConnections)") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw UserError(
                "--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(logLevel)'"
            )
        }
        guard defaultSteps >= 1 && defaultSteps <= 200 else { throw UserError("--default-steps must be in 1...200") }
        guard planMargin >= 0 && planMargin < 1 else { throw UserError("--plan-margin must be in [0, 1)") }
        guard resultTTL > 0 && resultTTL <= 30 * 86_400 else {
            throw UserError("--result-ttl must be in (0, 2592000] seconds, got \(resultTTL)")
        }
        guard resultMemory >= 1 && resultMemory <= 1_048_576 else {
            throw UserError("--result-memory must be in [1, 1048576] MiB, got \(resultMemory)")
        }
        if let dropLateAfter {
            guard dropLateAfter >= 0 && dropLateAfter <= 1000 else {
                throw UserError("--drop-late-after must be in [0, 1000], got \(dropLateAfter)")
            }
        }
    }

    /// Measures the classes on the workers: one warm-up and three measured steps per class and
    /// degree, every group of the workers busy at once (`tetriserve profile` measures more
    /// carefully and writes a file to reuse).
    func startupProfile(_ pool: WorkerPool) throws -> CostModel {
        log("profiling the workers (use --profile to skip)...")
        let degrees = [1, 2, 4, 8, 16, 32, 64].filter { $0 <= pool.workerCount }
        let profiler = Profiler(warmup: 1, repetitions: 3, load: .full)
        let measured = try userFacing {
            try profiler.measureAll(pool: pool, classes: pool.config.resolutionClasses, degrees: degrees) { m in
                log("  \(m.resolution) degree \(m.degree): \(String(format: "%.1f", m.stepMs)) ms/step")
            }
        }
        let profile = Profiler.profile(
            measured, name: "cpu-startup",
            description: "measured at server start-up, every group of the workers busy at once",
            workers: pool.workerCount)
        return try userFacing { try CostModel(profile: profile) }
    }

    /// Fails with an error naming the address when it cannot be bound, before any worker starts
    /// (the server binds again when it starts; a failure there gets the same error).
    func checkAddress() async throws {
        guard port != 0 else { return }
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await channel.close()
        } catch {
            throw bindFailure(error)
        }
    }

    /// A one-line error naming the address and the option to change for a failed bind; any
    /// other error unchanged.
    func bindFailure(_ error: any Error) -> any Error {
        guard let io = error as? IOError else { return error }
        switch io.errnoCode {
        case EADDRINUSE:
            return UserError(
                "port \(port) on \(host) is already in use; choose another with --port (--port 0 picks a free one)")
        case EACCES:
            return UserError("no permission to listen on port \(port) on \(host); choose a port above 1023 with --port")
        case EADDRNOTAVAIL:
            return UserError("cannot listen on \(host): not an address of this machine (--host)")
        default:
            return error
        }
    }

    func run() async throws {
        try await checkAddress()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "tetriserve")
        logger.logLevel = level
        let clock = ServingClock(timeScale: timeScale ?? 1)
        let backend: any ExecutionBackend
        let base: [Double]
        switch engine {
        case "simulated":
            let model = try userFacing { try ProfileFile.load(profile ?? Defaults.profile) }
            let devices = gpus ?? model.gpus
            guard devices >= 1 && devices <= GPUSet.capacity else {
                throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(devices)")
            }
            backend = SimulatedBackend(model: model, devices: devices, clock: clock)
            base = ServingConfiguration.paperSLOs(classes: model.resolutions.count)
        default:
            let workers = self.workers ?? 2
            guard workers >= 1 && workers <= GPUSet.capacity else {
                throw UserError("--workers must be in 1...\(GPUSet.capacity), got \(workers)")
            }
            let choice = try chooseModel(model: model, weights: weights)
            let options = try userFacing {
                try WorkerPool.Options(
                    workers: workers, model: choice.model, seed: weightsSeed ?? 0, weights: choice.weights)
            }
            let pool = try userFacing { try WorkerPool(options: options) }
            log(
                "workers: \(pool.workerCount), OpenBLAS core: \(Set(pool.coreNames).sorted().joined(separator: ",")), "
                    + "model: \(pool.config.name); classes \(pool.config.resolutionClassSummary)")
            let costModel: CostModel
            if let profile {
                costModel = try userFacing { try ProfileFile.load(profile) }
                guard costModel.gpus == workers else {
                    pool.shutdown()
                    throw UserError("profile '\(profile)' is for \(costModel.gpus) devices, --workers is \(workers)")
                }
            } else {
                costModel = try startupProfile(pool)
            }
            backend = CPUBackend(pool: pool, costModel: costModel, stepTimeout: stepTimeout)
            base = ServingConfiguration.profileSLOs(costModel)
        }
        var serving = ServingConfiguration(baseSLO: base, defaultSteps: defaultSteps, sloScale: sloScale)
        // The scheduler for a cost model: the profile's now, re-estimated ones when calibrating.
        let (frozen, policy, devices, granularity, planMargin) = (
            serving, policy, backend.devices, granularity, planMargin
        )
        let (capRound, admission, slackReserve) = (!uncappedRound, !noAdmission, reserve.slackReserve)
        let makeScheduler: RoundLoop.SchedulerFactory = { model in
            try frozen.scheduler(
                policy: policy, model: model, gpus: devices, granularity: granularity, planMargin: planMargin,
                capRound: capRound, admission: admission, slackReserve: slackReserve)
        }
        let scheduler = try userFacing { try makeScheduler(backend.costModel) }
        let factory = calibrate ?? (engine == "cpu") ? makeScheduler : nil
        let loop = RoundLoop(
            backend: backend, scheduler: scheduler, clock: clock,
            configuration: .init(
                maxQueue: maxQueue, rejectInfeasible: rejectInfeasible, resultTTLSeconds: resultTTL,
                resultMemory: Int(resultMemory * 1_048_576), dropLateAfter: dropLateAfter),
            metrics: ServerMetrics(), logger: logger, recalibrate: factory)
        serving.apiKeys = APIKeys.from(
            options: apiKeys, environment: ProcessInfo.processInfo.environment["TETRISERVE_API_KEYS"])
        if !serving.apiKeys.isEnabled && !APIKeys.isLoopback(host: host) {
            log(
                "warning: listening on \(host) without API keys: anyone who can reach this address can submit, "
                    + "read and cancel jobs (use --api-key or TETRISERVE_API_KEYS)")
        }
        serving.bodyTimeout = .seconds(bodyTimeout)
        let routes = ImageRoutes(loop: loop, configuration: serving)
        var options = HTTPOptions()
        options.idleTimeout = .seconds(idleTimeout)
        options.maxConnections = maxConnections
        options.drainTimeout = .seconds(drainTimeout)
        options.allowedHosts = allowedHosts
        let startLogger = logger
        let app = Server.application(
            routes: routes, host: host, port: port, logger: logger, options: options, drainOnShutdown: false
        ) { port in
            // Written straight to the file descriptor: scripts read this line to learn the port,
            // and print() would leave it in stdout's buffer when stdout is a pipe.
            let line =
                "tetriserve listening on http://\(host):\(port) (engine \(backend.kind), model \(backend.modelName), "
                + "\(backend.devices) devices, policy \(policy))\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            startLogger.info(
                "started", metadata: ["port": "\(port)", "engine": "\(backend.kind)", "devices": "\(backend.devices)"])
        }
        do {
            try await Server.service(app, routes: routes, options: options, logger: logger).run()
        } catch {
            throw bindFailure(error)
        }
        logger.info("exit")
    }
}
