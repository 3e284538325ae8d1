import Foundation

/// Finds the shipped weights (`models/*.safetensors`) from any working directory.
public enum ModelLocator {
    /// The directories searched, in order: `TETRISERVE_MODELS` (a directory, or a weights file
    /// itself), then `models/` in each ancestor of the executable's directory (a checkout's
    /// `.build/release/tetriserve` finds the checkout's `models/`), then `share/tetriserve/models`
    /// under each ancestor (an install prefix).
    public static func searchPaths(
        environment: [String: String] = ProcessInfo.processInfo.environment, executable: String? = nil
    ) -> [String] {
        var paths: [String] = []
        if let dir = environment["TETRISERVE_MODELS"], !dir.isEmpty { paths.append(dir) }
        let exe = executable ?? (try? WorkerPool.locateExecutable()) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            paths.append(dir.appendingPathComponent("models").path)
            paths.append(dir.appendingPathComponent("share/tetriserve/models").path)
            let parent = dir.deletingLastPathComponent()
            if parent.path == dir.path { break }
            dir = parent
        }
        return paths
    }

    /// The default weights file: the first search path holding `.safetensors` files gives its
    /// last by name (so `scenes-v2` wins over `scenes-v1`); nil when none is found.
    public static func defaultWeights(
        environment: [String: String] = ProcessInfo.processInfo.environment, executable: String? = nil
    ) -> String? {
        let fm = FileManager.default
        for path in searchPaths(environment: environment, executable: executable) {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if !isDirectory.boolValue {
                if path.hasSuffix(".safetensors") { return path }
                continue
            }
            let files = ((try? fm.contentsOfDirectory(atPath: path)) ?? [])
                .filter { $0.hasSuffix(".safetensors") }.sorted()
            if let last = files.last { return URL(fileURLWithPath: path).appendingPathComponent(last).path }
        }
        return nil
    }

    /// The model id of a weights file: its base name without `.safetensors`.
    public static func modelID(weights path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        return name.hasSuffix(".safetensors") ? String(name.dropLast(".safetensors".count)) : name
    }
}
