/// A set of GPU ids `0..<1024` as a fixed-size bitmask: no allocation, cheap to copy, so the
/// scheduler can build and compare sets in its inner loops.
public struct GPUSet: Hashable, Sendable, Sequence, CustomStringConvertible {
    /// The largest GPU count a set can address.
    public static let capacity = 1024
    private static let wordCount = 16

    private var words: InlineArray<16, UInt64>

    public init() {
        words = InlineArray(repeating: 0)
    }

    /// The set `0..<count`.
    public init(first count: Int) {
        self.init(range: 0..<count)
    }

    public init(range: Range<Int>) {
        self.init()
        for i in range { insert(i) }
    }

    public init(_ ids: some Sequence<Int>) {
        self.init()
        for i in ids { insert(i) }
    }

    public var isEmpty: Bool {
        for w in 0..<Self.wordCount where words[w] != 0 { return false }
        return true
    }

    public var count: Int {
        var c = 0
        for w in 0..<Self.wordCount { c += words[w].nonzeroBitCount }
        return c
    }

    public func contains(_ id: Int) -> Bool {
        precondition(id >= 0 && id < Self.capacity, "GPU id \(id) out of range")
        return words[id >> 6] & (1 << UInt64(id & 63)) != 0
    }

    public mutating func insert(_ id: Int) {
        precondition(id >= 0 && id < Self.capacity, "GPU id \(id) out of range")
        words[id >> 6] |= 1 << UInt64(id & 63)
    }

    public mutating func remove(_ id: Int) {
        precondition(id >= 0 && id < Self.capacity, "GPU id \(id) out of range")
        words[id >> 6] &= ~(1 << UInt64(id & 63))
    }

    public func union(_ other: GPUSet) -> GPUSet {
        var r = self
        for w in 0..<Self.wordCount { r.words[w] |= other.words[w] }
        return r
    }

    public func intersection(_ other: GPUSet) -> GPUSet {
        var r = self
        for w in 0..<Self.wordCount { r.words[w] &= other.words[w] }
        return r
    }

    public func subtracting(_ other: GPUSet) -> GPUSet {
        var r = self
        for w in 0..<Self.wordCount { r.words[w] &= ~other.words[w] }
        return r
    }

    public func isSubset(of other: GPUSet) -> Bool {
        for w in 0..<Self.wordCount where words[w] & ~other.words[w] != 0 { return false }
        return true
    }

    public func isDisjoint(with other: GPUSet) -> Bool {
        for w in 0..<Self.wordCount where words[w] & other.words[w] != 0 { return false }
        return true
    }

    /// The `n` lowest-numbered members (all of them when `n >= count`).
    public func lowest(_ n: Int) -> GPUSet {
        var r = GPUSet()
        var left = n
        var w = 0
        while left > 0 && w < Self.wordCount {
            var bits = words[w]
            while bits != 0 && left > 0 {
                let b = bits.trailingZeroBitCount
                r.words[w] |= 1 << UInt64(b)
                bits &= bits - 1
                left -= 1
            }
            w += 1
        }
        return r
    }

    /// The lowest-numbered member, or nil when the set is empty.
    public var lowestID: Int? {
        for w in 0..<Self.wordCount where words[w] != 0 { return w << 6 + words[w].trailingZeroBitCount }
        return nil
    }

    /// The members in ascending order.
    public var ids: [Int] { Array(self) }

    public func makeIterator() -> Iterator {
        Iterator(set: self)
    }

    public struct Iterator: IteratorProtocol {
        let set: GPUSet
        var word = 0
        var bits: UInt64

        init(set: GPUSet) {
            self.set = set
            bits = set.words[0]
        }

        public mutating func next() -> Int? {
            while bits == 0 {
                word += 1
                if word >= GPUSet.wordCount { return nil }
                bits = set.words[word]
            }
            let b = bits.trailingZeroBitCount
            bits &= bits - 1
            return word << 6 + b
        }
    }

    public static func == (lhs: GPUSet, rhs: GPUSet) -> Bool {
        for w in 0..<wordCount where lhs.words[w] != rhs.words[w] { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        for w in 0..<Self.wordCount { hasher.combine(words[w]) }
    }

    public var description: String { "[" + ids.map(String.init).joined(separator: ",") + "]" }
}
