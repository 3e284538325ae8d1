import Foundation
import TetriCore

/// One request of a trace: `id,arrival_s,width,height,steps,slo_s`.
public struct TraceRequest: Sendable, Equatable {
    public var id: Int
    public var arrival: Micros
    public var resolution: Resolution
    public var steps: Int
    public var slo: Micros

    public init(id: Int, arrival: Micros, resolution: Resolution, steps: Int, slo: Micros) {
        self.id = id
        self.arrival = arrival
        self.resolution = resolution
        self.steps = steps
        self.slo = slo
    }

    public var deadline: Micros { arrival + slo }
}

/// A request trace, ordered by arrival (ties by id), read from and written to the trace CSV.
public struct Trace: Sendable, Equatable {
    public static let header = "id,arrival_s,width,height,steps,slo_s"

    public private(set) var requests: [TraceRequest]

    public init(_ requests: [TraceRequest]) throws(TraceError) {
        var seen = Set<Int>()
        for r in requests {
            guard seen.insert(r.id).inserted else { throw .duplicateID(r.id) }
            guard r.arrival >= 0 else { throw .invalidField(line: nil, id: r.id, field: "arrival_s", "must be >= 0") }
            guard r.steps >= 1 else { throw .invalidField(line: nil, id: r.id, field: "steps", "must be >= 1") }
            guard r.slo > 0 else { throw .invalidField(line: nil, id: r.id, field: "slo_s", "must be > 0") }
        }
        self.requests = requests.sorted { ($0.arrival, $0.id) < ($1.arrival, $1.id) }
    }

    /// Parses the trace CSV. The header line is required; blank lines are ignored; every other
    /// line must be a complete, valid row.
    public init(csv text: String) throws(TraceError) {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
            .map { (number: $0.offset + 1, text: $0.element.trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.text.isEmpty }
        guard let first = lines.first else { throw .missingHeader(found: nil) }
        let columns = first.text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard columns == Trace.header.split(separator: ",").map(String.init) else {
            throw .missingHeader(found: first.text)
        }
        lines.removeFirst()
        var requests: [TraceRequest] = []
        requests.reserveCapacity(lines.count)
        for (number, line) in lines {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count == 6 else { throw .wrongColumnCount(line: number, found: f.count) }
            func int(_ i: Int, _ name: String) throws(TraceError) -> Int {
                guard let v = Int(f[i]) else {
                    throw .invalidField(line: number, id: nil, field: name, "'\(f[i])' is not an integer")
                }
                return v
            }
            func seconds(_ i: Int, _ name: String) throws(TraceError) -> Double {
                guard let v = Double(f[i]), v.isFinite else {
                    throw .invalidField(line: number, id: nil, field: name, "'\(f[i])' is not a number")
                }
                return v
            }
            let id = try int(0, "id")
            let arrival = try seconds(1, "arrival_s")
            let width = try int(2, "width")
            let height = try int(3, "height")
            let steps = try int(4, "steps")
            let slo = try seconds(5, "slo_s")
            guard arrival >= 0 else { throw .invalidField(line: number, id: id, field: "arrival_s", "must be >= 0") }
            guard width > 0 else { throw .invalidField(line: number, id: id, field: "width", "must be > 0") }
            guard height > 0 else { throw .invalidField(line: number, id: id, field: "height", "must be > 0") }
            guard steps >= 1 && steps <= 10_000 else {
                throw .invalidField(line: number, id: id, field: "steps", "must be in 1...10000")
            }
            guard slo > 0 else { throw .invalidField(line: number, id: id, field: "slo_s", "must be > 0") }
            requests.append(
                TraceRequest(
                    id: id, arrival: .fromSeconds(arrival), resolution: Resolution(width: width, height: height),
                    steps: steps, slo: .fromSeconds(slo)))
        }
        try self.init(requests)
    }

    /// The trace as CSV, times to the microsecond.
    public var csv: String {
        var out = Trace.header + "\n"
        for r in requests {
            out += "\(r.id),\(Self.format(r.arrival)),\(r.resolution.width),\(r.resolution.height),"
            out += "\(r.steps),\(Self.format(r.slo))\n"
        }
        return out
    }

    /// Microseconds as seconds with six decimals, exactly.
    public static func format(_ t: Micros) -> String {
        let sign = t < 0 ? "-" : ""
        let a = t.magnitude
        let frac = String(a % 1_000_000)
        return "\(sign)\(a / 1_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac
    }
}

/// Problems reading a trace, each naming the line and column.
public enum TraceError: Error, Equatable, CustomStringConvertible {
    case missingHeader(found: String?)
    case wrongColumnCount(line: Int, found: Int)
    case invalidField(line: Int?, id: Int?, field: String, String)
    case duplicateID(Int)

    public var description: String {
        switch self {
        case .missingHeader(let found):
            "trace must start with the header '\(Trace.header)'"
                + (found.map { ", found '\($0)'" } ?? ", file is empty")
        case .wrongColumnCount(let line, let n): "trace line \(line): expected 6 columns (\(Trace.header)), found \(n)"
        case .invalidField(let line, let id, let field, let why):
            "trace " + (line.map { "line \($0)" } ?? "request \(id ?? -1)") + ": column '\(field)' " + why
        case .duplicateID(let id): "trace has request id \(id) more than once (column 'id')"
        }
    }
}
