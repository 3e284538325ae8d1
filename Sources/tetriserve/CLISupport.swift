import ArgumentParser
import DiTEngine
import Foundation
import Synchronization
import TetriCore
import TetriSim

/// A one-line error for the user: printed as `Error: <message>` with a non-zero exit.
struct UserError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
    init(_ error: some CustomStringConvertible) { description = error.description }
}

/// Runs a throwing body and turns domain errors (which render as one line naming the problem)
/// into ``UserError``s, which the argument parser prints as `Error: <message>` with exit code 1.
func userFacing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as any CustomStringConvertible & Error {
        throw UserError(e.description)
    }
}

enum Defaults {
    /// The built-in FLUX.1-dev / 8×H100 profile.
    static let profile = "flux1-dev-h100x8"
    /// The built-in SD3-Medium / 4×A40 profile.
    static let sd3Profile = "sd3-medium-a40x4"
    /// How a profile is named on the command line.
    static let profileForms =
        "a built-in profile (\(ProfileFile.builtInNames.joined(separator: ", "))) or a profile JSON file"
}

/// Prints to standard error.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Checks before any work that `path` can be written as a file: its folder exists and is
/// writable, and it is not a folder itself (nor an existing read-only file).
func checkWritableFile(_ path: String, option: String) throws {
    let files = FileManager.default
    var isFolder: ObjCBool = false
    if files.fileExists(atPath: path, isDirectory: &isFolder) {
        guard !isFolder.boolValue else { throw ValidationError("\(option) '\(path)' is a folder; give a file path") }
        guard files.isWritableFile(atPath: path) else {
            throw ValidationError("\(option) '\(path)' exists and is not writable")
        }
        return
    }
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    guard files.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
        throw ValidationError("\(option) '\(path)': folder '\(folder)' does not exist")
    }
    guard files.isWritableFile(atPath: folder) else {
        throw ValidationError("\(option) '\(path)': folder '\(folder)' is not writable")
    }
}

/// Progress of a long command on standard error. On a terminal one line is redrawn in place
/// (`\r`, at most once per percent); otherwise (a log file, a pipe) a whole line is written at
/// each 10% step, at least every `interval` in between, and at the end, so logs stay readable.
final class ProgressReporter: Sendable {
    let label: String
    let unit: String
    let interactive: Bool
    let interval: Duration

    private struct State {
        var drawnPercent = -1
        var lastTenth = 0
        var lastLine = ContinuousClock.now
        var finished = false
    }

    private let state = Mutex(State())

    init(label: String, unit: String, interactive: Bool = isatty(STDERR_FILENO) == 1, interval: Duration = .seconds(5))
    {
        self.label = label
        self.unit = unit
        self.interactive = interactive
        self.interval = interval
    }

    /// Reports `done` of `total`; safe to call from several threads.
    func update(_ done: Int, of total: Int) {
        let line: String? = state.withLock { s in
            guard !s.finished else { return nil }
            let text = "\(label): \(done)/\(total) \(unit)"
            if done >= total { s.finished = true }
            if interactive {
                let percent = total > 0 ? min(100, done * 100 / total) : 100
                guard percent != s.drawnPercent || s.finished else { return nil }
                s.drawnPercent = percent
                return "\r" + text + (s.finished ? "\n" : "")
            }
            let tenth = total > 0 ? min(10, done * 10 / total) : 10
            let now = ContinuousClock.now
            guard s.finished || tenth > s.lastTenth || now - s.lastLine >= interval else { return nil }
            s.lastTenth = tenth
            s.lastLine = now
            return text + "\n"
        }
        if let line { FileHandle.standardError.write(Data(line.utf8)) }
    }
}

/// The model a command runs: an explicit `--weights` file; else an explicit `--model` with
/// seeded weights; else the shipped weights when found (``ModelLocator``); else `small` seeded.
func chooseModel(model: String?, weights: String?) throws -> (model: String, weights: String?) {
    if let weights {
        guard FileManager.default.fileExists(atPath: weights) else {
            throw UserError("--weights '\(weights)' does not exist")
        }
        return (model ?? "small", weights)
    }
    if let model {
        guard ModelConfig.named[model] != nil else {
            throw UserError(
                "--model must be one of \(ModelConfig.named.keys.sorted().joined(separator: ", ")), got '\(model)'")
        }
        return (model, nil)
    }
    return ("small", ModelLocator.defaultWeights())
}

/// The model options of `generate`, `profile` and `eval`: a named configuration with seeded
/// weights, or a weights file; by default the shipped weights when found.
struct ModelOptions: ParsableArguments {
    @Option(
        help: """
            Model configuration with seeded weights: \(ModelConfig.named.keys.sorted().joined(separator: ", ")) \
            (default: the shipped weights in models/ when found, else small).
            """)
    var model: String?

    @Option(
        name: .customLong("weights-seed"), parsing: .unconditional,
        help: "Seed of the model's deterministic weights (with --model).")
    var weightsSeed: UInt64 = 0

    @Option(help: "Safetensors weights file to load (its metadata gives the model configuration).")
    var weights: String?

    /// The model to run; see ``chooseModel(model:weights:)``.
    func choose() throws -> (model: String, weights: String?) { try chooseModel(model: model, weights: weights) }
}

/// `--slack-reserve`, the one scheduler knob `simulate`, `serve` and `experiment` share.
struct SlackReserveOption: ParsableArguments {
    @Option(
        name: .customLong("slack-reserve"), parsing: .unconditional,
        help: """
            tetriserve's slack reserve in ticks: an option leaving a request less slack than this pays the node's \
            GPU-time for the shortfall (0 turns it off; see docs/scheduler.md).
            """)
    var slackReserve: Int = RoundScheduler.defaultSlackReserve

    func validate() throws {
        guard slackReserve >= 0 else { throw UserError("--slack-reserve must be >= 0 ticks, got \(slackReserve)") }
    }
}
