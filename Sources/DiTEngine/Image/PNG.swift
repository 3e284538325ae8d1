import CZlib
import Foundation

/// A PNG encoder for 8-bit RGB images (filter 0 rows, one zlib-compressed IDAT chunk).
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
