import ArgumentParser

@main
struct TetriServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tetriserve",
        abstract: "Deadline-aware serving of Diffusion Transformer image generation with step-level sequence parallelism.",
        discussion: """
            The same round scheduler drives the simulator (virtual time on a profiled cost model) and,
            in later modules, the server on real workers.
            """,
        subcommands: [
            WorkloadCommand.self,
            SimulateCommand.self,
            ExperimentCommand.self,
            BenchCommand.self,
            GenerateCommand.self, ProfileCommand.self, WorkerCommand.self,
        ]
    )
}
