/// Conversion between the latent (patch tokens in row-major grid order, each `channels × p × p`
/// values, channel-major) and 8-bit RGB pixels.
public enum Patches {
    /// Pixels (`height × width × 3`, values in [-1, 1]) from the latent tokens.
    public static func unpatchify(_ latent: [Float], config: ModelConfig, width: Int, height: Int) -> [Float] {
        let p = config.patchSize
        let c = config.channels
        let columns = width / p
        var pixels = [Float](repeating: 0, count: width * height * c)
        for token in 0..<(columns * (height / p)) {
            let tr = token / columns
            let tc = token % columns
            for ch in 0..<c {
                for dy in 0..<p {
                    for dx in 0..<p {
                        let v = latent[token * config.patchDim + (ch * p + dy) * p + dx]
                        pixels[((tr * p + dy) * width + tc * p + dx) * c + ch] = v
                    }
                }
            }
        }
        return pixels
    }

    /// The inverse of ``unpatchify(_:config:width:height:)``.
    public static func patchify(_ pixels: [Float], config: ModelConfig, width: Int, height: Int) -> [Float] {
        let p = config.patchSize
        let c = config.channels
        let columns = width / p
        var latent = [Float](repeating: 0, count: width * height * c)
        for token in 0..<(columns * (height / p)) {
            let tr = token / columns
            let tc = token % columns
            for ch in 0..<c {
                for dy in 0..<p {
                    for dx in 0..<p {
                        latent[token * config.patchDim + (ch * p + dy) * p + dx] =
                            pixels[((tr * p + dy) * width + tc * p + dx) * c + ch]
                    }
                }
            }
        }
        return latent
    }

    /// 8-bit values from [-1, 1] floats (clamped; NaN becomes 0).
    public static func toBytes(_ pixels: [Float]) -> [UInt8] {
        pixels.map { v in
            guard v.isFinite else { return v == .infinity ? 255 : 0 }
            let x = (Swift.min(Swift.max(v, -1), 1) + 1) * 127.5
            return UInt8(x.rounded())
        }
    }
}
