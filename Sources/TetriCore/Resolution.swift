/// An image size in pixels, written `WIDTHxHEIGHT` in files and on the command line.
public struct Resolution: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `"1024x1024"`; returns nil for anything else.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else {
            return nil
        }
        self.init(width: w, height: h)
    }

    public var description: String { "\(width)x\(height)" }

    public var pixels: Int { width * height }

    public static func < (lhs: Resolution, rhs: Resolution) -> Bool {
        (lhs.pixels, lhs.width) < (rhs.pixels, rhs.width)
    }
}
