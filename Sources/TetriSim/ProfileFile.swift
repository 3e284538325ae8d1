import Foundation
import TetriCore

/// Reading profile files.
public enum ProfileFile {
    /// Loads and validates a profile JSON file.
    public static func load(_ path: String, handoff: Micros = 0) throws(FileError) -> CostModel {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path) }
        let profile: Profile
        do {
            profile = try JSONDecoder().decode(Profile.self, from: data)
        } catch {
            throw .malformed(path, Self.describe(error))
        }
        do {
            return try CostModel(profile: profile, handoff: handoff)
        } catch {
            throw .invalid(path, error.description)
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let ctx):
            "missing field '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            "field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)"
        case DecodingError.dataCorrupted(let ctx):
            "not valid JSON"
                + (ctx.codingPath.isEmpty ? "" : " at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'")
        default: "\(error)"
        }
    }
}

/// File problems, naming the file.
public enum FileError: Error, Equatable, CustomStringConvertible {
    case unreadable(String)
    case malformed(String, String)
    case invalid(String, String)
    case unwritable(String)

    public var description: String {
        switch self {
        case .unreadable(let p): "cannot read '\(p)'"
        case .malformed(let p, let why): "'\(p)': \(why)"
        case .invalid(let p, let why): "'\(p)': \(why)"
        case .unwritable(let p): "cannot write '\(p)'"
        }
    }
}

/// Writes text to a file, creating parent folders.
public func writeFile(_ text: String, to path: String) throws(FileError) {
    let url = URL(fileURLWithPath: path)
    do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    } catch {
        throw .unwritable(path)
    }
}
