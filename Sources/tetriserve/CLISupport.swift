import ArgumentParser
import DiTEngine
import Foundation
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
    static let profile = "profiles/flux1-dev-h100x8.json"
}

/// Prints to standard error.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
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
