/// A grid of images with captions in a 5×7 bitmap font, as RGB bytes.
public struct ContactSheet {
    public struct Cell {
        public var rgb: [UInt8]
        public var width: Int
        public var height: Int
        public var caption: String

        public init(rgb: [UInt8], width: Int, height: Int, caption: String) {
            self.rgb = rgb
            self.width = width
            self.height = height
            self.caption = caption
        }
    }

    /// Side of the square each image is scaled into (nearest neighbour).
    public var imageSide = 128
    /// Caption lines kept below each image.
    public var captionLines = 5
    public var columns: Int
    public var cells: [Cell]

    public init(columns: Int, cells: [Cell]) {
        self.columns = max(1, columns)
        self.cells = cells
    }

    static let padding = 6
    static let glyphWidth = 6
    static let lineHeight = 9

    var cellWidth: Int { imageSide + 2 * ContactSheet.padding }
    var cellHeight: Int { imageSide + 2 * ContactSheet.padding + captionLines * ContactSheet.lineHeight }

    /// The sheet's size in pixels.
    public var size: (width: Int, height: Int) {
        let rows = (cells.count + columns - 1) / columns
        return (columns * cellWidth, max(1, rows) * cellHeight)
    }

    /// The sheet as `height × width × 3` RGB bytes (white background, black captions).
    public func render() -> [UInt8] {
        let (w, h) = size
        var out = [UInt8](repeating: 255, count: w * h * 3)
        for (k, cell) in cells.enumerated() {
            let x0 = (k % columns) * cellWidth + ContactSheet.padding
            let y0 = (k / columns) * cellHeight + ContactSheet.padding
            let scale = Double(imageSide) / Double(max(cell.width, cell.height))
            let dw = Int(Double(cell.width) * scale)
            let dh = Int(Double(cell.height) * scale)
            for y in 0..<dh {
                let sy = min(cell.height - 1, Int(Double(y) / scale))
                for x in 0..<dw {
                    let sx = min(cell.width - 1, Int(Double(x) / scale))
                    for c in 0..<3 { out[((y0 + y) * w + x0 + x) * 3 + c] = cell.rgb[(sy * cell.width + sx) * 3 + c] }
                }
            }
            let lines = ContactSheet.wrap(cell.caption, width: imageSide / ContactSheet.glyphWidth)
            for (i, line) in lines.prefix(captionLines).enumerated() {
                ContactSheet.draw(
                    line, x: x0, y: y0 + imageSide + 4 + i * ContactSheet.lineHeight, into: &out, width: w, height: h)
            }
        }
        return out
    }

    /// Greedy word wrap to lines of at most `width` characters.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            var word = String(word)
            while word.count > width {
                if !current.isEmpty {
                    lines.append(current)
                    current = ""
                }
                lines.append(String(word.prefix(width)))
                word = String(word.dropFirst(width))
            }
            if current.isEmpty {
                current = word
            } else if current.count + 1 + word.count <= width {
                current += " " + word
            } else {
                lines.append(current)
                current = word
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    static func draw(_ text: String, x: Int, y: Int, into out: inout [UInt8], width: Int, height: Int) {
        for (i, ch) in text.uppercased().enumerated() {
            guard let rows = font[ch] ?? (ch == " " ? nil : font["?"]) else { continue }
            for (r, bits) in rows.enumerated() {
                for c in 0..<5 where bits & (0x10 >> c) != 0 {
                    let px = x + i * glyphWidth + c
                    let py = y + r
                    guard px < width, py < height else { continue }
                    for k in 0..<3 { out[(py * width + px) * 3 + k] = 0 }
                }
            }
        }
    }

    /// 5×7 glyphs, one byte a row, bit 4 the leftmost column.
    static let font: [Character: [UInt8]] = [
        "A": [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], "B": [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        "C": [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], "D": [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        "E": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], "F": [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        "G": [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], "H": [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        "I": [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], "J": [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        "K": [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], "L": [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        "M": [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], "N": [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        "O": [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "P": [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        "Q": [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], "R": [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        "S": [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], "T": [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        "U": [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], "V": [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        "W": [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], "X": [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        "Y": [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], "Z": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ",": [0, 0, 0, 0, 0x0C, 0x04, 0x08], ".": [0, 0, 0, 0, 0, 0x0C, 0x0C], ":": [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        "-": [0, 0, 0, 0x1F, 0, 0, 0], "?": [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
        "/": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0], "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        "!": [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04], "'": [0x04, 0x04, 0x08, 0, 0, 0, 0],
    ]
}
