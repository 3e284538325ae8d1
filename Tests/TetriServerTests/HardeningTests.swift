import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import TetriCore
@testable import TetriServer

/// Sends raw bytes to 127.0.0.1:`port` and reads until the server closes the connection, `responses`
/// status lines arrived (and their bodies, by Content-Length), or `timeout` seconds passed.
///
/// The socket is polled on a Dispatch thread, off Swift's cooperative pool: the in-process
/// server's handlers run on that pool (two threads on a 2-core machine), so a test that blocked
/// one of its threads waiting for an answer could starve the server it waits for when suites run
/// in parallel. The timeout only bounds a failing test; a passing one returns with its answers.
func rawExchange(port: Int, _ request: String, responses: Int = 1, timeout: Double = 30) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(
                with: Result { try rawExchangeBlocking(port: port, request, responses: responses, timeout: timeout) })
        }
    }
}

/// ``rawExchange(port:_:responses:timeout:)`` on the calling thread (for a server in another process).
func rawExchangeBlocking(port: Int, _ request: String, responses: Int = 1, timeout: Double = 30) throws -> String {
    let fd = try rawConnect(port: port)
    defer { close(fd) }
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var received = [UInt8]()
    let start = Date()
    while Date().timeIntervalSince(start) < timeout {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 100) > 0 else { continue }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[0..<n]
        if parseResponses(received).count >= responses { break }
    }
    return String(decoding: received, as: UTF8.self)
}

/// The complete HTTP responses (head, and a body of its Content-Length) at the start of `bytes`:
/// status code and body of each.
func parseResponses(_ bytes: [UInt8]) -> [(status: Int, body: String)] {
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    var offset = 0
    var out: [(Int, String)] = []
    while true {
        guard
            let headEnd = (offset..<max(offset, bytes.count - 3)).first(where: {
                Array(bytes[$0..<$0 + 4]) == separator
            })
        else { return out }
        let head = String(decoding: bytes[offset..<headEnd], as: UTF8.self)
        var length = 0
        for line in head.lowercased().components(separatedBy: "\r\n") where line.hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        let next = headEnd + 4 + length
        guard next <= bytes.count, head.hasPrefix("HTTP/1.1 "), let status = Int(head.dropFirst(9).prefix(3)) else {
            return out
        }
        out.append((status, String(decoding: bytes[(headEnd + 4)..<next], as: UTF8.self)))
        offset = next
    }
}

func rawConnect(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard fd >= 0 && connected == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

/// Status codes of the responses in a raw exchange, in order.
func statusCodes(_ text: String) -> [Int] {
    parseResponses(Array(text.utf8)).map(\.status)
}

/// A seeded generator (SplitMix64): the fuzz bodies are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random JSON bodies: keys of the request schema (and some others), values of every JSON type,
/// extreme numbers, long strings, deep nesting, and bytes that are not JSON at all.
struct BodyFuzzer {
    var rng: SplitMix64
    static let keys =
        Array(ImageRequest.knownFields) + Array(ImageRequest.ignoredOpenAIFields) + [
            "colour", "", "prompt\u{0}", "__proto__", "PROMPT",
        ]
    static let numbers: [Double] = [
        0, -0.0, 1, -1, 0.5, 1e16, -1e16, 1e300, -1e300, 9.3e18, 1.8446744073709552e19, 9_007_199_254_740_992,
        4_294_967_296, 2_147_483_648, 1e-300, 86_400_000, 86_400_001, 200, 201, 65_536, 16_384,
        Date().timeIntervalSince1970 * 1000, Date().timeIntervalSince1970 * 1000 + 9e7,
    ]
    static let strings = [
        "", "p", "256x256", "512x512", "1024x1024", "2048x2048", "0x0", "-1x5", "99999999999999999999x1",
        "16384x16384", "16385x2", "x", "b64_json", "url", "png", "jpeg", "hd", "transparent", "auto",
        "flux.1-dev", "a red fox", "\u{1F98A}", "\\u0000",
    ]

    mutating func int(_ n: Int) -> Int { Int.random(in: 0..<n, using: &rng) }

    mutating func value(depth: Int) -> Any {
        switch int(depth > 3 ? 6 : 8) {
        case 0: return NSNull()
        case 1: return int(2) == 0
        case 2: return Self.numbers[int(Self.numbers.count)]
        case 3: return Int.random(in: Int.min...Int.max, using: &rng)
        case 4: return Self.strings[int(Self.strings.count)]
        case 5: return String(repeating: "ab", count: [1, 100, 3000, 20_000][int(4)])
        case 6: return (0..<int(4)).map { _ in value(depth: depth + 1) }
        default:
            var o: [String: Any] = [:]
            for _ in 0..<int(4) { o[Self.keys[int(Self.keys.count)]] = value(depth: depth + 1) }
            return o
        }
    }

    /// One body as bytes.
    mutating func body() -> [UInt8] {
        switch int(10) {
        case 0:
            // Deep nesting, well-formed or not.
            let depth = [10, 33, 500, 20_000][int(4)]
            let open = int(2) == 0 ? "[" : "{\"a\":"
            return Array((String(repeating: open, count: depth) + "1").utf8)
        case 1:
            // Random bytes.
            return (0..<int(200)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 2, 3, 4:
            // A valid request with one field replaced.
            var o: [String: Any] = ["prompt": "a fox", "size": "256x256", "num_inference_steps": 4]
            o[Self.keys[int(Self.keys.count)]] = value(depth: 1)
            return serialize(o)
        default:
            var o: [String: Any] = [:]
            for _ in 0..<int(6) { o[Self.keys[int(Self.keys.count)]] = value(depth: 1) }
            return serialize(o)
        }
    }

    func serialize(_ o: [String: Any]) -> [UInt8] {
        // Large integers and doubles alike go through JSONSerialization's number formatting.
        [UInt8]((try? JSONSerialization.data(withJSONObject: o)) ?? Data("{}".utf8))
    }
}

@Suite struct RangeCheckTests {
    /// Each value once trapped converting a Double to `Micros` or an Int, or would with a larger
    /// time scale; now each is a 400 naming its field.
    static let cases: [(String, String, String)] = [
        (#""deadline": 1e16"#, "deadline", "within one day"),
        (#""deadline": 1"#, "deadline", "within one day"),
        (#""deadline": -1e300"#, "deadline", "within one day"),
        (#""slo_ms": 1e300"#, "slo_ms", "86400000"),
        (#""seed": 1e19"#, "seed", "between 0 and 9007199254740991"),
        (#""seed": 18446744073709551615"#, "seed", "between 0 and"),
        (#""seed": 9007199254740993"#, "seed", "between 0 and"),
        (#""n": 1e20"#, "n", "between 1 and"),
        (#""n": -9000000000000000000"#, "n", "between 1 and"),
        (#""num_inference_steps": 1e300"#, "num_inference_steps", "between 1 and 200"),
        (#""num_inference_steps": 2.5"#, "num_inference_steps", "must be an integer"),
        (#""size": "99999999999999999999x1""#, "size", "WIDTHxHEIGHT"),
        (#""size": "9223372036854775807x9223372036854775807""#, "size", "between 1 and 16384"),
        (#""output_compression": 1e30"#, "output_compression", "between 0 and 100"),
    ]

    /// A request for 256² with `fields` (a JSON fragment) added.
    static func request(_ fields: String) -> ByteBuffer {
        ByteBuffer(string: #"{"prompt": "p", "size": "256x256", "# + fields + "}")
    }

    @Test(arguments: cases.indices)
    func extremeNumbersAreA400NamingTheField(_ index: Int) async throws {
        let (fields, param, fragment) = Self.cases[index]
        // 10000x: the scale at which a small `deadline` used to trap the other way.
        let app = makeApp(try makeLoop(timeScale: 10_000))
        try await app.test(.live) { client in
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: Self.request(fields)
            ) { res in
                #expect(res.status == .badRequest, "\(fields)")
                let err = try #require(try json(res.body)["error"] as? [String: Any])
                #expect(err["param"] as? String == param, "\(err)")
                #expect((err["message"] as? String ?? "").contains(fragment), "\(err)")
            }
            try await client.execute(uri: "/healthz", method: .get) { res in #expect(res.status == .ok) }
        }
    }

    @Test func theSynchronousEndpointChecksTheSameWay() async throws {
        let app = makeApp(try makeLoop(timeScale: 10_000))
        for fields in [#""deadline": 1e16"#, #""deadline": 1"#] {
            try await app.test(.live) { client in
                try await client.execute(
                    uri: "/v1/images/generations", method: .post, headers: jsonHeaders, body: Self.request(fields)
                ) { res in
                    #expect(res.status == .badRequest)
                    let err = try json(res.body)["error"] as? [String: Any]
                    #expect(err?["param"] as? String == "deadline")
                }
            }
        }
    }

    @Test func aDeadlineWithinTheDayIsAccepted() async throws {
        let loop = try makeLoop(timeScale: 10_000)
        let app = makeApp(loop)
        let now = Date().timeIntervalSince1970 * 1000
        try await app.test(.live) { client in
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p", "size": "256x256", "deadline": now + 60_000])
            ) { res in #expect(res.status == .accepted) }
        }
    }

    @Test func theClockSaturatesInsteadOfTrapping() {
        #expect(Micros(clamping: 1e300) == .max)
        #expect(Micros(clamping: -1e300) == .min)
        #expect(Micros(clamping: .nan) == 0)
        #expect(Micros(clamping: 1234.6) == 1235)
        let clock = ServingClock(timeScale: ServingClock.maxTimeScale)
        #expect(clock.realDuration(.max) >= .seconds(9_000_000))
    }

    @Test func deepNestingIsRefusedBeforeParsing() {
        #expect(ImageRequest.nestingDepth(Data("{\"a\":[1,{\"b\":\"[[[[\"}]}".utf8)) == 3)
        #expect(ImageRequest.nestingDepth(Data(String(repeating: "[", count: 50_000).utf8)) == 50_000)
        #expect(ImageRequest.nestingDepth(Data("\"\\\"[[\"".utf8)) == 0)
    }
}

@Suite struct FuzzTests {
    /// Two thousand random bodies against the in-process server: every answer is below 500 and
    /// the server keeps serving. The counts are printed (and written down in docs/serving.md).
    @Test func randomBodiesNeverGetA5xx() async throws {
        let loop = try makeLoop(timeScale: 1000, maxQueue: 16)
        let app = makeApp(loop)
        var fuzzer = BodyFuzzer(rng: SplitMix64(state: 20_261_127))
        let bodies = (0..<2000).map { _ in fuzzer.body() }
        var counts: [Int: Int] = [:]
        // AsyncHTTPClient opens a new connection after an answer that closes one (413 and the like).
        let jobCodes = try await app.test(.ahc(.http)) { client in
            var codes: [Int] = []
            for (i, bytes) in bodies.enumerated() {
                // Most to the jobs endpoint; every tenth also with a wrong or missing Content-Type.
                let headers: HTTPFields = i % 10 == 9 ? [.contentType: "text/plain"] : jsonHeaders
                let status = try await client.execute(
                    uri: "/v1/images/jobs", method: .post, headers: headers, body: ByteBuffer(bytes: bytes)
                ) { res in
                    if res.status.code >= 400 {
                        // Every error is in OpenAI's shape.
                        #expect((try? json(res.body))?["error"] != nil)
                    }
                    return res.status.code
                }
                codes.append(status)
                #expect(status < 500, "body \(i): \(String(decoding: bytes.prefix(200), as: UTF8.self))")
            }
            try await client.execute(uri: "/healthz", method: .get) { res in #expect(res.status == .ok) }
            return codes
        }
        // The synchronous endpoint shares the parser; a sample of the same bodies over raw sockets.
        // A fresh server: the first one drained its loop when its test ended.
        let sample = Array(bodies.prefix(50))
        let started = ContinuousClock.now
        let syncCodes = try await makeApp(try makeLoop(timeScale: 1000, maxQueue: 16)).test(.live) { client in
            let port = try #require(client.port)
            var all: [Int] = []
            for bytes in sample {
                let text = String(decoding: bytes, as: UTF8.self)
                let request =
                    "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(text.utf8.count)\r\n\r\n\(text)"
                let response = try await rawExchange(port: port, request, timeout: 30)
                let codes = statusCodes(response)
                #expect(
                    codes.count == 1 && codes.allSatisfy { $0 < 500 },
                    "\(codes) for \(text.prefix(200)): \(response.suffix(300))")
                all += codes
            }
            return all
        }
        print("fuzz: synchronous sample took \(started.duration(to: .now))")
        for c in jobCodes + syncCodes { counts[c / 100 * 100, default: 0] += 1 }
        print("fuzz: \(bodies.count + 50) bodies; answers by class: \(counts.sorted { $0.key < $1.key })")
        #expect(counts.keys.allSatisfy { $0 < 500 })
        #expect(counts.values.reduce(0, +) == bodies.count + 50)
    }
}

/// A backend whose devices are partly down, to show `/healthz` reporting it.
struct DegradedBackend: ForwardingBackend {
    let inner: SimulatedBackend
    var unavailableDevices: Int { 1 }
}

@Suite struct HTTPEdgeTests {
    @Test func wrongMethodsAre405AndHeadIsAnswered() async throws {
        let app = makeApp(try makeLoop())
        try await app.test(.live) { client in
            for (uri, method, allow) in [
                ("/v1/images/generations", HTTPRequest.Method.get, "POST"),
                ("/v1/images/jobs/job-1/content", .delete, "GET, HEAD"),
                ("/healthz", .post, "GET, HEAD"),
                ("/v1/images/jobs/job-1", .put, "GET, HEAD, DELETE"),
            ] {
                try await client.execute(uri: uri, method: method, headers: jsonHeaders) { res in
                    #expect(res.status == .methodNotAllowed, "\(method) \(uri)")
                    #expect(res.headers[.allow] == allow, "\(method) \(uri)")
                    let err = try #require(try json(res.body)["error"] as? [String: Any])
                    #expect(err["code"] as? String == "method_not_allowed")
                }
            }
            try await client.execute(uri: "/nowhere", method: .get) { res in
                #expect(res.status == .notFound)
                let err = try #require(try json(res.body)["error"] as? [String: Any])
                #expect(err["type"] as? String == "not_found_error")
                #expect((err["message"] as? String ?? "").contains("/nowhere"))
            }
            for uri in ["/healthz", "/v1/models", "/metrics", "/openapi.json"] {
                try await client.execute(uri: uri, method: .head) { res in
                    #expect(res.status == .ok, "HEAD \(uri)")
                    #expect(res.body.readableBytes == 0)
                }
            }
        }
    }

    @Test func postsMustBeJSONAndHostsLoopback() async throws {
        let app = makeApp(try makeLoop())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let payload = #"{"prompt":"p","size":"256x256","num_inference_steps":2}"#
            func post(host: String, type: String?) async throws -> Int {
                let typeLine = type.map { "Content-Type: \($0)\r\n" } ?? ""
                let text = try await rawExchange(
                    port: port,
                    "POST /v1/images/jobs HTTP/1.1\r\nHost: \(host)\r\n\(typeLine)Content-Length: \(payload.utf8.count)"
                        + "\r\n\r\n\(payload)")
                return statusCodes(text).first ?? 0
            }
            #expect(try await post(host: "localhost:8080", type: "text/plain") == 415)
            #expect(try await post(host: "localhost:8080", type: nil) == 415)
            #expect(try await post(host: "localhost:8080", type: "application/x-www-form-urlencoded") == 415)
            #expect(try await post(host: "localhost:8080", type: "application/json; charset=utf-8") == 202)
            #expect(try await post(host: "127.0.0.1:\(port)", type: "application/json") == 202)
            #expect(try await post(host: "[::1]:\(port)", type: "application/json") == 202)
            #expect(try await post(host: "127.1.2.3", type: "application/json") == 202)
            #expect(try await post(host: "evil.example:8080", type: "application/json") == 403)
            #expect(try await post(host: "localhost.evil.example", type: "application/json") == 403)
            let get = try await rawExchange(port: port, "GET /healthz HTTP/1.1\r\nHost: rebound.example\r\n\r\n")
            #expect(statusCodes(get) == [403])
            #expect(get.contains("host_not_allowed"))
        }
    }

    @Test func allowedHostsAreAccepted() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var options = HTTPOptions()
        options.allowedHosts = ["tetri.internal"]
        let routes = ImageRoutes(loop: try makeLoop(), configuration: ServingConfiguration(baseSLO: [1.5, 2, 3, 5]))
        let app = Server.application(routes: routes, host: "127.0.0.1", port: 0, logger: logger, options: options)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            for (host, code) in [("tetri.internal:9000", 200), ("TETRI.internal", 200), ("other.internal", 403)] {
                let text = try await rawExchange(port: port, "GET /healthz HTTP/1.1\r\nHost: \(host)\r\n\r\n")
                #expect(statusCodes(text) == [code], "\(host)")
            }
        }
    }

    @Test func pipelinedRequestsAreAllAnswered() async throws {
        let app = makeApp(try makeLoop(timeScale: 1000))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let payload = #"{"prompt":"p","size":"256x256","num_inference_steps":2}"#
            let post =
                "POST /v1/images/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(payload.utf8.count)\r\n\r\n\(payload)"
            let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            let text = try await rawExchange(
                port: port, get + post + get + post + "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n", responses: 5
            )
            #expect(statusCodes(text) == [200, 202, 200, 202, 200])
        }
    }

    /// A synchronous generation between two pipelined requests: all three are answered, in
    /// order, and the connection stays open (watching for the client leaving consumes nothing).
    @Test func pipelinedRequestsAroundASynchronousOneAreAllAnswered() async throws {
        let app = makeApp(try makeLoop(timeScale: 1000))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let payload = #"{"prompt":"p","size":"256x256","num_inference_steps":4}"#
            let post =
                "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(payload.utf8.count)\r\n\r\n\(payload)"
            let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            let models = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"
            let text = try await rawExchange(port: port, get + post + models + post + get, responses: 5)
            let responses = parseResponses(Array(text.utf8))
            #expect(responses.map(\.status) == [200, 200, 200, 200, 200])
            #expect(responses.count == 5)
            if responses.count == 5 {
                #expect(responses[0].body.contains("\"status\""))
                #expect(responses[1].body.contains("b64_json"))
                #expect(responses[2].body.contains("\"object\":\"list\""))
                #expect(responses[3].body.contains("b64_json"))
                #expect(responses[4].body.contains("\"status\""))
            }
            #expect(!text.lowercased().contains("connection: close"))
        }
    }

    /// Every answer after which the server closes the connection says `Connection: close`, and the
    /// connection is then closed (a request sent behind it gets no answer); other errors keep it.
    @Test func closingAnswersSayConnectionClose() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var configuration = ServingConfiguration(baseSLO: [1.5, 2, 3, 5])
        configuration.bodyTimeout = .milliseconds(300)
        let routes = ImageRoutes(loop: try makeLoop(timeScale: 1000), configuration: configuration)
        let app = Server.application(routes: routes, host: "127.0.0.1", port: 0, logger: logger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
            func post(_ body: String, length: Int? = nil, extra: String = "") -> String {
                "POST /v1/images/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(length ?? body.utf8.count)\r\n\(extra)\r\n\(body)"
            }
            let closing: [(String, String, Int)] = [
                ("413, whole body sent", post(String(repeating: "x", count: 100_000)), 413),
                ("413, body still to come", post(String(repeating: "x", count: 70_000), length: 10_000_000), 413),
                ("408, body stalled", post("{\"pro", length: 100), 408),
                (
                    "400, bad chunk",
                    "POST /v1/images/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 400
                ),
                ("client asked to close", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 200),
                ("HTTP/1.0 closes by default", "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n", 200),
                ("HTTP/1.0 404", "GET /nope HTTP/1.0\r\nHost: localhost\r\n\r\n", 404),
            ]
            for (name, request, status) in closing {
                // The request, then one more behind it: only the first is answered, then EOF.
                let text = try await rawExchange(port: port, request + get, responses: 2)
                #expect(statusCodes(text) == [status], "\(name)")
                #expect(text.lowercased().contains("\r\nconnection: close\r\n"), "\(name)")
                #expect(text.contains("\"error\"") || status == 200, "\(name): OpenAI error shape")
            }
            let keeping: [(String, String, Int)] = [
                ("400, bad JSON", post("{bad"), 400),
                ("415", post("{}").replacingOccurrences(of: "json", with: "xml"), 415),
                ("404", "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", 404),
                ("403, host", "GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),
                (
                    "HTTP/1.0 keep-alive", "GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
                    200
                ),
            ]
            for (name, request, status) in keeping {
                let text = try await rawExchange(port: port, request + get, responses: 2)
                #expect(statusCodes(text) == [status, 200], "\(name)")
                #expect(!text.lowercased().contains("connection: close"), "\(name)")
            }
        }
    }

    @Test func openAIFieldsAreAcceptedWithWarnings() async throws {
        let loop = try makeLoop(timeScale: 1000)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let model = try await client.execute(uri: "/v1/models", method: .get) { res in
                let data = try #require(try json(res.body)["data"] as? [[String: Any]])
                return try #require(data.first?["id"] as? String)
            }
            #expect(model == loop.backend.modelName)
            let request: [String: Any] = [
                "prompt": "p", "size": "256x256", "model": model, "output_format": "png", "quality": "hd",
                "style": "vivid", "moderation": "low", "background": "auto", "stream": false,
            ]
            try await client.execute(uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: body(request)) {
                res in
                #expect(res.status == .accepted)
                let warnings = try #require(try json(res.body)["warnings"] as? [String])
                #expect(warnings.count == 3)
                #expect(warnings.allSatisfy { $0.contains("ignored") })
            }
            for (fields, param) in [
                (#""output_format": "webp""#, "output_format"), (#""stream": true"#, "stream"),
                (#""background": "green""#, "background"), (#""styles": "vivid""#, "styles"),
                (#""model": "dall-e-3""#, "model"),
            ] {
                try await client.execute(
                    uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: RangeCheckTests.request(fields)
                ) { res in
                    #expect(res.status == .badRequest, "\(fields)")
                    let err = try json(res.body)["error"] as? [String: Any]
                    #expect(err?["param"] as? String == param)
                }
            }
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p", "size": "256x256"])
            ) { res in
                #expect(res.status == .accepted)
                let obj = try json(res.body)
                #expect(obj["warnings"] == nil)
            }
        }
    }

    @Test func healthShowsDegradedDevices() async throws {
        let model = try CostModel(profile: fluxProfile)
        let clock = ServingClock(timeScale: 100)
        let backend = DegradedBackend(inner: SimulatedBackend(model: model, devices: 8, clock: clock))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let loop = RoundLoop(
            backend: backend, scheduler: try Policies.make("tetriserve", model: model, gpus: 8), clock: clock,
            metrics: ServerMetrics(), logger: logger)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { res in
                let obj = try json(res.body)
                #expect(obj["status"] as? String == "degraded")
                #expect(obj["unavailable_devices"] as? Int == 1)
            }
        }
    }
}

@Suite struct OpenAPITests {
    /// The document served at `/openapi.json`, the routes the server registers, and the route
    /// table are the same set; every documented route answers (no 404-for-route, no 405).
    @Test func theDocumentAndTheRoutesAgree() async throws {
        let loop = try makeLoop(timeScale: 1000)
        let routes = ImageRoutes(loop: loop, configuration: ServingConfiguration(baseSLO: [1.5, 2, 3, 5]))
        let registered = routes.add(to: Router(context: ServeRequestContext.self))
        let table = Set(ImageRoutes.endpoints.map { "\($0.method.rawValue) \($0.path)" })
        #expect(Set(registered.map { "\($0.method.rawValue) \($0.path)" }) == table)
        #expect(registered.count == ImageRoutes.endpoints.count)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let doc = try await client.execute(uri: "/openapi.json", method: .get) { res in
                #expect(res.status == .ok)
                return try json(res.body)
            }
            #expect((doc["openapi"] as? String)?.hasPrefix("3.") == true)
            let paths = try #require(doc["paths"] as? [String: [String: Any]])
            var documented: Set<String> = []
            for (path, item) in paths {
                for method in item.keys where method != "parameters" {
                    documented.insert("\(method.uppercased()) \(path)")
                }
            }
            #expect(documented == table)
            // The synchronous endpoint closes its connection: it goes last.
            let generations = "/v1/images/generations"
            let ordered =
                ImageRoutes.endpoints.filter { $0.path != generations }
                + ImageRoutes.endpoints.filter { $0.path == generations }
            for entry in ordered {
                let uri = entry.path.replacingOccurrences(of: "{id}", with: "job-0")
                let payload =
                    entry.method == .post ? body(["prompt": "p", "size": "256x256", "num_inference_steps": 2]) : nil
                try await client.execute(uri: uri, method: entry.method, headers: jsonHeaders, body: payload) { res in
                    #expect(res.status != .methodNotAllowed, "\(entry)")
                    if res.status == .notFound {
                        let message = (try json(res.body)["error"] as? [String: Any])?["message"] as? String ?? ""
                        #expect(!message.hasPrefix("no route"), "\(entry): \(message)")
                    }
                }
            }
        }
    }
}
