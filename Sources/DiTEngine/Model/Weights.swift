import Foundation

/// All parameters of a model in one contiguous, immutable float allocation.
///
/// Immutable after initialisation, so one instance is shared by every thread of a process.
public final class Weights: @unchecked Sendable {
    public let config: ModelConfig
    /// Tensor name → (offset in floats, shape), in ``ModelConfig/parameterShapes`` order.
    public let layout: [String: (offset: Int, shape: [Int])]
    public let names: [String]
    public let count: Int
    let storage: UnsafeMutablePointer<Float>

    init(config: ModelConfig, fill: (String, [Int], UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        var layout: [String: (Int, [Int])] = [:]
        var names: [String] = []
        var offset = 0
        for (name, shape) in config.parameterShapes {
            layout[name] = (offset, shape)
            names.append(name)
            offset += shape.reduce(1, *)
        }
        self.config = config
        self.layout = layout
        self.names = names
        self.count = offset
        storage = .allocate(capacity: Swift.max(offset, 1))
        storage.initialize(repeating: 0, count: Swift.max(offset, 1))
        for name in names {
            let (o, shape) = layout[name]!
            try fill(name, shape, UnsafeMutableBufferPointer(start: storage + o, count: shape.reduce(1, *)))
        }
    }

    deinit { storage.deallocate() }

    /// Deterministic initialisation from `seed`: linear weights ~ N(0, 1/fan_in) (modulation
    /// layers half that scale), biases ~ N(0, 0.02²), norm weights 1, embeddings ~ N(0, 1).
    public convenience init(config: ModelConfig, seed: UInt64) {
        self.init(config: config) { name, shape, buffer in
            var rng = SplitMix64(seed: seed ^ fnv1a(name))
            if name.hasSuffix("norm.weight") || name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") {
                buffer.update(repeating: 1)
                return
            }
            let std: Float
            if name.hasSuffix(".bias") {
                std = 0.02
            } else if shape.count == 2 && !name.hasPrefix("text.embed") && !name.hasPrefix("text.position") {
                std = (name.hasSuffix("mod.weight") ? 0.5 : 1) / Float(shape[1]).squareRoot()
            } else {
                std = 1
            }
            for i in buffer.indices { buffer[i] = rng.nextGaussian() * std }
        }
    }

    /// Weights from named tensors (for example a safetensors file): every parameter of `config`
    /// must be present with its exact shape.
    public convenience init(config: ModelConfig, tensors: [String: (shape: [Int], values: [Float])]) throws {
        try self.init(config: config) { name, shape, buffer in
            guard let t = tensors[name] else { throw EngineError.weights("tensor '\(name)' is missing") }
            guard t.shape == shape, t.values.count == buffer.count else {
                throw EngineError.weights("tensor '\(name)' has shape \(t.shape), expected \(shape)")
            }
            _ = buffer.update(fromContentsOf: t.values)
        }
    }

    /// Pointer to a tensor's values.
    public func pointer(_ name: String) -> UnsafePointer<Float> {
        guard let entry = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return UnsafePointer(storage + entry.offset)
    }

    /// A copy of one tensor's values.
    public func values(_ name: String) -> [Float] {
        let (o, shape) = layout[name]!
        return Array(UnsafeBufferPointer(start: storage + o, count: shape.reduce(1, *)))
    }

    /// Whether two weight sets hold identical values.
    public func isIdentical(to other: Weights) -> Bool {
        config == other.config && count == other.count
            && memcmp(storage, other.storage, count * MemoryLayout<Float>.stride) == 0
    }
}

/// FNV-1a hash of a string, to derive one seed per tensor.
func fnv1a(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}
