import ArgumentParser
import DiTEngine
import Foundation

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one engine worker process (started by the worker pool of generate and profile, not by hand).",
        discussion: """
            The worker maps the pool's shared memory, builds the model, pins itself to a CPU with a \
            single OpenBLAS thread, and answers one JSON command per line on stdin with one JSON reply \
            per line on stdout until stdin closes.
            """
    )

    @Option(parsing: .unconditional, help: "This worker's index in the pool (its exchange slot).")
    var index: Int

    @Option(
        name: .customLong("arena-fd"), parsing: .unconditional,
        help: "Inherited descriptor of the pool's shared memory.")
    var arenaFd: Int32

    @Option(help: "The shared memory layout as JSON (written by the pool).")
    var layout: String

    @Option(help: "Model configuration: \(ModelConfig.named.keys.sorted().joined(separator: ", ")).")
    var model: String = "small"

    @Option(parsing: .unconditional, help: "Seed of the deterministic weight initialisation (ignored with --weights).")
    var seed: UInt64 = 0

    @Option(help: "Safetensors weights file to load instead of seeded weights.")
    var weights: String?

    @Option(parsing: .unconditional, help: "CPU to pin this process to.")
    var cpu: Int?

    func run() throws {
        let layout: ArenaLayout
        do {
            layout = try JSONDecoder().decode(ArenaLayout.self, from: Data(self.layout.utf8))
        } catch {
            throw UserError("--layout is not a shared memory layout: \(error)")
        }
        try Worker.run(
            Worker.Options(
                index: index, arenaDescriptor: arenaFd, layout: layout, model: model, seed: seed, weights: weights,
                cpu: cpu))
    }
}
