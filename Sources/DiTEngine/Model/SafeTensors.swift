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

extension Weights {
    /// Writes the weights and their configuration (metadata key `config`) as safetensors.
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
            tensors: list, metadata: ["config": configJSON, "format": "tetriserve-mmdit"])
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Reads weights written by ``save(to:)`` (or any safetensors file with the same tensor names;
    /// then `config` must be given).
    public static func load(from path: String, config: ModelConfig? = nil) throws -> Weights {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let (tensors, metadata) = try SafeTensors.decode(data)
        var resolved = config
        if resolved == nil, let text = metadata["config"] {
            resolved = try JSONDecoder().decode(ModelConfig.self, from: Data(text.utf8))
        }
        guard let resolved else { throw EngineError.weights("\(path) has no 'config' metadata; name the model") }
        try resolved.validate()
        return try Weights(config: resolved, tensors: tensors)
    }
}
