import Foundation

/// Training data: rendered scenes with prompts from the training phrasings.
public enum Dataset {
    /// Item `index` of the dataset seeded `seed`: its scene and prompt (independent of the count,
    /// the size and the other items).
    public static func item(seed: UInt64, index: Int) -> (scene: Scene, prompt: String) {
        var rng = SceneRandom(seed: seed, index: index)
        let scene = Scene.random(using: &rng)
        return (scene, Grammar.trainingPrompt(scene, using: &rng))
    }

    public enum WriteError: Error, CustomStringConvertible {
        case io(String)
        public var description: String {
            switch self {
            case .io(let message): message
            }
        }
    }

    /// Writes `images.u8` (count × height × width × 3 bytes, RGB, row-major), `prompts.txt`,
    /// `scenes.jsonl` and `meta.json` into `directory` (created if missing).
    public static func write(
        count: Int, width: Int, height: Int, seed: UInt64, to directory: URL,
        progress: ((Int) -> Void)? = nil
    ) throws {
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw WriteError.io("cannot create --out directory '\(directory.path)': \(error.localizedDescription)")
        }
        let imagesURL = directory.appendingPathComponent("images.u8")
        guard fm.createFile(atPath: imagesURL.path, contents: nil),
            let images = try? FileHandle(forWritingTo: imagesURL)
        else { throw WriteError.io("cannot write '\(imagesURL.path)'") }
        defer { try? images.close() }

        var prompts = ""
        var scenes = ""
        let imageBytes = width * height * 3
        let chunk = max(1, min(count, (32 << 20) / max(1, imageBytes)))
        var buffer = [UInt8](repeating: 0, count: chunk * imageBytes)
        var start = 0
        while start < count {
            let n = min(chunk, count - start)
            let items = (start..<(start + n)).map { item(seed: seed, index: $0) }
            buffer.withUnsafeMutableBufferPointer { all in
                nonisolated(unsafe) let base = all.baseAddress!
                DispatchQueue.concurrentPerform(iterations: n) { k in
                    let slice = UnsafeMutableBufferPointer(start: base + k * imageBytes, count: imageBytes)
                    Renderer.render(items[k].scene, width: width, height: height, into: slice)
                }
            }
            for (scene, prompt) in items {
                prompts += prompt + "\n"
                scenes += scene.json + "\n"
            }
            do {
                try images.write(contentsOf: buffer[0..<(n * imageBytes)])
            } catch {
                throw WriteError.io("cannot write '\(imagesURL.path)': \(error.localizedDescription)")
            }
            start += n
            progress?(start)
        }
        let meta: [String: Any] = [
            "count": count, "width": width, "height": height, "seed": seed,
            "vocabulary": Grammar.vocabulary,
        ]
        let metaData = try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
        for (name, data) in [
            ("prompts.txt", Data(prompts.utf8)), ("scenes.jsonl", Data(scenes.utf8)), ("meta.json", metaData),
        ] {
            let url = directory.appendingPathComponent(name)
            do {
                try data.write(to: url)
            } catch {
                throw WriteError.io("cannot write '\(url.path)': \(error.localizedDescription)")
            }
        }
    }
}
