import ArgumentParser
import DiTEngine
import Foundation
import Logging
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

    @Option(help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port: Int = 8080

    @Option(help: "Execution engine: cpu or simulated.")
    var engine: String = "cpu"

    @Option(help: "CPU engine: worker processes (devices), one per core.")
    var workers: Int = 2

    @Option(
        help: """
            CPU engine: model configuration with seeded weights (\(ModelConfig.named.keys.sorted().joined(separator: ", "))); \
            default: the shipped weights in models/ when found, else small.
            """)
    var model: String?

    @Option(help: "CPU engine: safetensors weights file to load (its metadata gives the model configuration).")
    var weights: String?

    @Option(name: .customLong("weights-seed"), help: "CPU engine: seed of the model's deterministic weights.")
    var weightsSeed: UInt64 = 0

    @Option(
        help: """
            Cost profile JSON. CPU engine: skip start-up profiling and use this one (it must match --model and \
            --workers). Simulated engine: the node to rehearse (default: the FLUX profile).
            """)
    var profile: String?

    @Option(
        name: .customLong("plan-margin"),
        help: "Plans aim to finish this fraction of the time left before each deadline (slack for timing noise).")
    var planMargin: Double = 0

    @Option(help: "Virtual devices of the simulated engine (default: the profile's).")
    var gpus: Int?

    @Option(name: .customLong("time-scale"), help: "Simulated engine: virtual time runs this many times faster.")
    var timeScale: Double = 1

    @Option(help: "Scheduling policy: \(Policies.names.joined(separator: ", ")).")
    var policy: String = "tetriserve"

    @Option(help: "Step granularity of the round schedulers.")
    var granularity: Int = 5

    @Option(name: .customLong("max-queue"), help: "Requests waiting or running at most; more get 429.")
    var maxQueue: Int = 64

    @Flag(
        name: .customLong("reject-infeasible"),
        help: "Answer 422 to requests whose deadline no schedule can meet, instead of running them best effort.")
    var rejectInfeasible = false

    @Option(name: .customLong("slo-scale"), help: "Multiplier on the default per-resolution SLOs.")
    var sloScale: Double = 1

    @Option(name: .customLong("default-steps"), help: "Steps when a request gives no num_inference_steps.")
    var defaultSteps: Int = 50

    func validate() throws {
        guard ["cpu", "simulated"].contains(engine) else {
            throw UserError("--engine must be cpu or simulated, got '\(engine)'")
        }
        guard port >= 0 && port < 65536 else { throw UserError("--port must be in 0...65535, got \(port)") }
        guard timeScale > 0 && timeScale.isFinite else { throw UserError("--time-scale must be > 0") }
        if engine == "cpu" {
            // Options of the simulated engine would otherwise be accepted and ignored.
            guard timeScale == 1 else { throw UserError("--time-scale applies to --engine simulated only") }
            guard gpus == nil else { throw UserError("--gpus applies to --engine simulated; use --workers") }
        }
        guard maxQueue >= 1 else { throw UserError("--max-queue must be >= 1, got \(maxQueue)") }
        guard sloScale > 0 else { throw UserError("--slo-scale must be > 0") }
        guard defaultSteps >= 1 && defaultSteps <= 200 else { throw UserError("--default-steps must be in 1...200") }
        guard planMargin >= 0 && planMargin < 1 else { throw UserError("--plan-margin must be in [0, 1)") }
    }

    /// Measures the classes on the workers: one warm-up and three measured steps per class and
    /// degree (`tetriserve profile` measures more carefully and writes a file to reuse).
    func startupProfile(_ pool: WorkerPool) throws -> CostModel {
        log("profiling the workers (use --profile to skip)...")
        let degrees = [1, 2, 4, 8, 16, 32, 64].filter { $0 <= pool.workerCount }
        let profiler = Profiler(warmup: 1, repetitions: 3)
        let measured = try userFacing {
            try profiler.measureAll(pool: pool, classes: pool.config.resolutionClasses, degrees: degrees) { m in
                log("  \(m.resolution) degree \(m.degree): \(String(format: "%.1f", m.stepMs)) ms/step")
            }
        }
        let profile = Profiler.profile(
            measured, name: "cpu-startup", description: "measured at server start-up", workers: pool.workerCount)
        return try userFacing { try CostModel(profile: profile) }
    }

    func run() async throws {
        var logger = Logger(label: "tetriserve")
        logger.logLevel = .info
        let clock = ServingClock(timeScale: timeScale)
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
            guard workers >= 1 && workers <= GPUSet.capacity else {
                throw UserError("--workers must be in 1...\(GPUSet.capacity), got \(workers)")
            }
            let choice = try chooseModel(model: model, weights: weights)
            let options = try userFacing {
                try WorkerPool.Options(
                    workers: workers, model: choice.model, seed: weightsSeed, weights: choice.weights)
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
            backend = CPUBackend(pool: pool, costModel: costModel)
            base = ServingConfiguration.profileSLOs(costModel)
        }
        let scheduler = try userFacing {
            try Policies.make(
                policy, model: backend.costModel, gpus: backend.devices, granularity: granularity,
                planMargin: planMargin)
        }
        let loop = RoundLoop(
            backend: backend, scheduler: scheduler, clock: clock,
            configuration: .init(maxQueue: maxQueue, rejectInfeasible: rejectInfeasible), metrics: ServerMetrics(),
            logger: logger)
        let routes = ImageRoutes(
            loop: loop,
            configuration: ServingConfiguration(baseSLO: base, defaultSteps: defaultSteps, sloScale: sloScale))
        let app = Server.application(routes: routes, host: host, port: port, logger: logger) { port in
            print(
                "tetriserve listening on http://\(host):\(port) (engine \(backend.kind), model \(backend.modelName), "
                    + "\(backend.devices) devices, policy \(policy))")
        }
        try await app.runService()
    }
}
