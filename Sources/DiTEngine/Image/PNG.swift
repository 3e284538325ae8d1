import CZlib
import Foundation

/// PNG for 8-bit RGB images: the encoder writes filter-0 rows in one zlib-compressed IDAT chunk;
/// the decoder reads any non-interlaced 8-bit RGB file (every row filter, split IDAT chunks).
public enum PNG {
    /// The PNG file bytes of `width × height` RGB pixels (`rgb` row-major, 3 bytes a pixel).
    public static func encode(rgb: [UInt8], width: Int, height: Int) throws -> Data {
        precondition(rgb.count == width * height * 3)
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + width * 3))
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: rgb[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var bound = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(bound))
        let rc = compress2(&compressed, &bound, raw, uLong(raw.count), 6)
        guard rc == Z_OK else { throw EngineError.io("zlib compress2 failed with code \(rc)") }
        compressed.removeSubrange(Int(bound)...)

        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var header = [UInt8]()
        header.append(contentsOf: bigEndian(UInt32(width)))
        header.append(contentsOf: bigEndian(UInt32(height)))
        header.append(contentsOf: [8, 2, 0, 0, 0])
        chunk("IHDR", header, into: &out)
        chunk("IDAT", compressed, into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    /// The pixels of an 8-bit RGB, non-interlaced PNG (`rgb` row-major, 3 bytes a pixel). Checks
    /// the signature, every chunk's CRC and the IHDR fields; other colour types, bit depths and
    /// interlacing are rejected with an error that names them.
    public static func decode(_ bytes: [UInt8]) throws -> (width: Int, height: Int, rgb: [UInt8]) {
        func bad(_ why: String) -> EngineError { .io("PNG: \(why)") }
        guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else {
            throw bad("no PNG signature")
        }
        func be32(_ i: Int) -> Int {
            Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
        }
        var i = 8
        var width = 0
        var height = 0
        var idat: [UInt8] = []
        var sawEnd = false
        while i < bytes.count && !sawEnd {
            guard i + 12 <= bytes.count else { throw bad("truncated chunk header at byte \(i)") }
            let length = be32(i)
            guard length <= bytes.count - i - 12 else { throw bad("chunk at byte \(i) runs past the end") }
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            let crc =
                bytes[(i + 4)..<(i + 8 + length)].withContiguousStorageIfAvailable {
                    crc32(0, $0.baseAddress, uInt($0.count))
                } ?? 0
            guard UInt(crc) == UInt(be32(i + 8 + length)) else { throw bad("CRC mismatch in \(type)") }
            let body = bytes[(i + 8)..<(i + 8 + length)]
            switch type {
            case "IHDR":
                guard length == 13 else { throw bad("IHDR of \(length) bytes") }
                width = be32(i + 8)
                height = be32(i + 12)
                let (depth, colour, interlace) = (
                    body[body.startIndex + 8], body[body.startIndex + 9], body[body.startIndex + 12]
                )
                guard depth == 8, colour == 2, interlace == 0 else {
                    throw bad(
                        "bit depth \(depth), colour type \(colour), interlace \(interlace); only 8-bit RGB (2), not interlaced"
                    )
                }
            case "IDAT": idat += body
            case "IEND": sawEnd = true
            default: break
            }
            i += 12 + length
        }
        guard width > 0, height > 0 else { throw bad("no IHDR or an empty image") }
        // The engine's largest class is 512²; a hostile header must not allocate hundreds of MB.
        guard width <= 4096, height <= 4096 else { throw bad("\(width)x\(height) is larger than 4096x4096") }
        let stride = width * 3
        var raw = [UInt8](repeating: 0, count: height * (stride + 1))
        var rawLength = uLong(raw.count)
        guard uncompress(&raw, &rawLength, idat, uLong(idat.count)) == Z_OK, Int(rawLength) == raw.count else {
            throw bad("image data does not inflate to \(height) rows of \(width) pixels")
        }
        var out = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            guard filter <= 4 else { throw bad("row \(y) has filter type \(filter)") }
            for x in 0..<stride {
                let v = raw[y * (stride + 1) + 1 + x]
                let a = x >= 3 ? Int(out[y * stride + x - 3]) : 0
                let b = y > 0 ? Int(out[(y - 1) * stride + x]) : 0
                let c = x >= 3 && y > 0 ? Int(out[(y - 1) * stride + x - 3]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                default:
                    let p = a + b - c
                    let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                }
                out[y * stride + x] = UInt8(truncatingIfNeeded: Int(v) + predictor)
            }
        }
        return (width, height, out)
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8], into out: inout Data) {
        let typeBytes = Array(type.utf8)
        out.append(contentsOf: bigEndian(UInt32(data.count)))
        out.append(contentsOf: typeBytes)
        out.append(contentsOf: data)
        var crc = crc32(0, typeBytes, uInt(typeBytes.count))
        crc = data.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt(data.count)) }
        out.append(contentsOf: bigEndian(UInt32(crc)))
    }
}
