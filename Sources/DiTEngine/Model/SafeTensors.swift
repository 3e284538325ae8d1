import Foundation

/// Reading and writing the safetensors format (8-byte little-endian header length, a JSON header
/// of `name → {dtype, shape, data_offsets}` plus `__metadata__`, then the raw data), F32 only.
public enum SafeTensors {
    /// Serialises named tensors (in the given order) with string metadata.
    public static func encode(
        tensors: [(name: String, shape: [Int], values: UnsafeBufferPointer<Float>)], metadata: [String: String]
    ) throws -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var data = Data(capacity: 8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(json)
        for t in tensors {
            data.append(
                UnsafeBufferPointer(
                    start: UnsafeRawPointer(t.values.baseAddress!).assumingMemoryBound(to: UInt8.self),
                    count: t.values.count * 4))
        }
        return data
    }

    /// Parses a safetensors file's bytes into named F32 tensors and its metadata.
    public static func decode(_ data: Data) throws -> (
        tensors: [String: (shape: [Int], values: [Float])], metadata: [String: String]
    ) {
        guard data.count >= 8 else {
            throw EngineError.weights("safetensors file is shorter than its 8-byte header length")
        }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) {
            $0 | (UInt64($1.element) << (8 * UInt64($1.offset)))
        }
        guard length <= UInt64(data.count - 8) else {
            throw EngineError.weights("safetensors header length \(length) exceeds the file")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(length)))
        guard let header = try JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw EngineError.weights("safetensors header is not a JSON object")
        }
        let base = 8 + Int(length)
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw EngineError.weights("safetensors entry '\(name)' lacks dtype, shape or data_offsets") }
            guard dtype == "F32" else {
                throw EngineError.weights("tensor '\(name)' has dtype \(dtype); only F32 is read")
            }
            let count = shape.reduce(1, *)
            guard offsets[1] - offsets[0] == count * 4, offsets[0] >= 0, base + offsets[1] <= data.count else {
                throw EngineError.weights("tensor '\(name)' data_offsets \(offsets) do not match shape \(shape)")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                data.copyBytes(to: dst.bindMemory(to: UInt8.self), from: (base + offsets[0])..<(base + offsets[1]))
            }
            tensors[name] = (shape, values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) })
        }
        return (tensors, metadata)
    }
}

extension SafeTensors {
    /// The `__metadata__` of a safetensors file, reading only its header.
    public static func metadata(path: String) throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw EngineError.weights("cannot open weights file '\(path)'")
        }
        defer { try? handle.close() }
        let prefix = (try? handle.read(upToCount: 8)) ?? Data()
        guard prefix.count == 8 else { throw EngineError.weights("\(path) is not a safetensors file (too short)") }
        let length = prefix.enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard length < 1 << 30, let headerData = try? handle.read(upToCount: Int(length)),
            headerData.count == Int(length),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { throw EngineError.weights("\(path) has no readable safetensors header") }
        return (header["__metadata__"] as? [String: String]) ?? [:]
    }
}

extension ModelConfig {
    /// The metadata key of the configuration JSON in a weights file.
    public static let metadataKey = "tetriserve.config"

    /// The configuration stored in a weights file's metadata (`tetriserve.config`, or the older
    /// `config`), nil when it has none.
    public static func stored(in metadata: [String: String], path: String) throws -> ModelConfig? {
        guard let text = metadata[metadataKey] ?? metadata["config"] else { return nil }
        do {
            return try JSONDecoder().decode(ModelConfig.self, from: Data(text.utf8))
        } catch {
            throw EngineError.weights("\(path): metadata '\(metadataKey)' is not a model configuration: \(error)")
        }
    }

    /// The configuration of a weights file (read from its header only).
    public static func stored(inWeightsFile path: String) throws -> ModelConfig? {
        try stored(in: SafeTensors.metadata(path: path), path: path)
    }
}

extension Weights {
    /// Writes the weights and their configuration (metadata key `tetriserve.config`) as safetensors.
    public func save(to path: String) throws {
        let configJSON = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        let list = names.map { name in
            let (o, shape) = layout[name]!
            return (
                name: name, shape: shape,
                values: UnsafeBufferPointer(start: UnsafePointer(storage + o), count: shape.reduce(1, *))
            )
        }
        let data = try SafeTensors.encode(
            tensors: list, metadata: [ModelConfig.metadataKey: configJSON, "format": "tetriserve-mmdit"])
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Reads weights written by ``save(to:)``: the configuration comes from the file's metadata;
    /// `fallback` is used only for a file without one (or the load fails naming the problem).
    public static func load(from path: String, fallback: ModelConfig? = nil) throws -> Weights {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EngineError.weights("cannot read weights file '\(path)': \(error.localizedDescription)")
        }
        let (tensors, metadata) = try SafeTensors.decode(data)
        guard let resolved = try ModelConfig.stored(in: metadata, path: path) ?? fallback else {
            throw EngineError.weights("\(path) has no '\(ModelConfig.metadataKey)' metadata; name the model")
        }
        try resolved.validate()
        return try Weights(config: resolved, tensors: tensors)
    }
}
