import Foundation
import TetriCore

/// Reading profile files.
public enum ProfileFile {
    /// Loads and validates a profile: a JSON file, or the name of a built-in profile (see ``contents(of:)``).
    /// `dispatchOverhead` overrides the profile's `dispatch_overhead_ms` when set.
    public static func load(
        _ path: String, handoff: Micros = 0, dispatchOverhead: Micros? = nil
    ) throws(FileError) -> CostModel {
        let data = try contents(of: path)
        let profile: Profile
        do {
            profile = try JSONDecoder().decode(Profile.self, from: data)
        } catch {
            throw .malformed(path, Self.describe(error))
        }
        do {
            return try CostModel(profile: profile, handoff: handoff, dispatchOverhead: dispatchOverhead)
        } catch {
            throw .invalid(path, error.description)
        }
    }

    /// The names of the built-in profiles (the files of `profiles/` without `.json`), sorted.
    public static var builtInNames: [String] { EmbeddedProfiles.files.keys.sorted() }

    /// The bytes of a profile. A bare name (no `/`, not ending in `.json`) selects the built-in
    /// profile of that name, or else a file of that name; anything else is a file path.
    public static func contents(of reference: String) throws(FileError) -> Data {
        let bare = !reference.contains("/") && !reference.hasSuffix(".json")
        if bare, let text = EmbeddedProfiles.files[reference] { return Data(text.utf8) }
        if let data = FileManager.default.contents(atPath: reference) { return data }
        if bare { throw .unknownProfile(reference, builtInNames) }
        throw .unreadable(reference)
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let ctx):
            "missing field '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            "field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)"
        case DecodingError.dataCorrupted(let ctx) where ctx.underlyingError == nil && !ctx.codingPath.isEmpty:
            // A value the decoder refused by name (e.g. an unknown `topology` field).
            ctx.debugDescription
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
    /// A bare profile name that is neither built in nor a file; the built-in names.
    case unknownProfile(String, [String])

    public var description: String {
        switch self {
        case .unreadable(let p): "cannot read '\(p)'"
        case .malformed(let p, let why): "'\(p)': \(why)"
        case .invalid(let p, let why): "'\(p)': \(why)"
        case .unwritable(let p): "cannot write '\(p)'"
        case .unknownProfile(let name, let names):
            "no built-in profile or file '\(name)'; built-in profiles: \(names.joined(separator: ", "))"
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
