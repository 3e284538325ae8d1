import ArgumentParser
import DiTEngine

@main
struct TetriServeCommand: AsyncParsableCommand {
    /// Workers are started from this executable, whatever its file is called.
    static func main() async {
        WorkerPool.adoptRunningExecutable()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "tetriserve",
        abstract: "Deadline-aware Diffusion Transformer image generation with step-level sequence parallelism.",
        discussion: """
            One round scheduler drives the simulator (virtual time on a profiled cost model) and the \
            execution engine (CPU workers running a DiT with Ulysses sequence parallelism).
            """,
        subcommands: [
            WorkloadCommand.self,
            SimulateCommand.self,
            BoundCommand.self,
            ExperimentCommand.self,
            BenchCommand.self,
            ServeCommand.self,
            LoadgenCommand.self,
            GenerateCommand.self, ProfileCommand.self, WorkerCommand.self,
            DatasetCommand.self, EvalCommand.self,
        ]
    )
}
