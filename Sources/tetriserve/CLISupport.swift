import ArgumentParser
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
