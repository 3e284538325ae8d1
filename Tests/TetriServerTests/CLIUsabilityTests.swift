import DiTEngine
import Foundation
import Testing
import TetriCore
import TetriSim

#if canImport(Glibc)
    import Glibc
#endif

/// A listening TCP socket on 127.0.0.1 at a free port; `close()` frees the port again.
struct Listener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        try #require(fd >= 0 && bound)
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}

/// Whether something accepts TCP connections on 127.0.0.1:port.
func accepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// The command-line surface a new user meets: the built binary run as a separate process.
@Suite(.serialized) struct CLIUsabilityTests {
    func tempFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func commandsRunFromAnyDirectoryWithTheBuiltInProfiles() throws {
        let dir = try tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (s1, _, e1) = try runCLI(["workload", "--count", "30", "--seed", "2", "--out", "t.csv"], in: dir)
        #expect(s1 == 0, "\(e1)")
        let trace = dir.appendingPathComponent("t.csv").path
        // The built-in default, the built-in named, and the repository's file give the same result.
        let (s2, fromElsewhere, e2) = try runCLI(["simulate", "--trace", "t.csv"], in: dir)
        #expect(s2 == 0, "\(e2)")
        let (s3, named, _) = try runCLI(["simulate", "--trace", "t.csv", "--profile", "flux1-dev-h100x8"], in: dir)
        #expect(s3 == 0)
        let (s4, fromFile, _) = try runCLI(
            ["simulate", "--trace", trace, "--profile", "profiles/flux1-dev-h100x8.json"])
        #expect(s4 == 0)
        #expect(fromElsewhere.contains("SLO attainment") && fromElsewhere == named && named == fromFile)

        let (s5, table, e5) = try runCLI(
            ["experiment", "granularity", "--seeds", "1", "--count", "10", "--out", "res"], in: dir)
        #expect(s5 == 0, "\(e5)")
        #expect(table.contains("|"))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("res/granularity.csv").path))
        // Standard error is a pipe here: whole progress lines, no carriage returns.
        #expect(!e5.contains("\r"))
        #expect(e5.split(separator: "\n").contains { $0.hasPrefix("granularity: ") && $0.hasSuffix(" simulations") })

        let (s6, bench, e6) = try runCLI(["bench", "scheduler", "--states", "20", "--pending", "8"], in: dir)
        #expect(s6 == 0, "\(e6)")
        #expect(bench.contains("decision p50_us="))

        let (s7, _, e7) = try runCLI(["simulate", "--trace", "t.csv", "--profile", "nope"], in: dir)
        #expect(s7 != 0)
        #expect(e7.contains("no built-in profile or file 'nope'") && e7.contains("flux1-dev-h100x8"), "\(e7)")
    }

    /// An installed copy may be called anything: the workers start from the running executable.
    @Test func aRenamedExecutableStartsItsWorkers() throws {
        let original = URL(fileURLWithPath: try WorkerPool.locateExecutable())
        // A hard link in a folder of its own (no `tetriserve` beside it), on the same file system.
        let folder = original.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("renamed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let renamed = folder.appendingPathComponent("ts-renamed")
        try FileManager.default.linkItem(at: original, to: renamed)
        let dir = try tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = renamed
        p.arguments = [
            "generate", "--prompt", "a red circle", "--size", "64x64", "--steps", "2", "--model", "tiny", "--workers",
            "2", "--out", "x.png",
        ]
        p.currentDirectoryURL = dir
        p.environment = ProcessInfo.processInfo.environment.filter { $0.key != "TETRISERVE_EXECUTABLE" }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(e)")
        let png = try Data(contentsOf: dir.appendingPathComponent("x.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    @Test func validationErrorsShowTheSubcommandsUsageBeforeAnyWork() throws {
        let dir = try tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [([String], String, String)] = [
            (
                ["generate", "--prompt", "x", "--out", "/nonexistent/dir/x.png"], "generate",
                "--out '/nonexistent/dir/x.png': folder '/nonexistent/dir' does not exist"
            ),
            (["generate", "--prompt", "x", "--out", dir.path], "generate", "is a folder"),
            (["generate", "--prompt", "x", "--size", "7x9", "--out", "x.png"], "generate", "--size"),
            (["generate", "--prompt", "x", "--steps", "5", "--plan", "1x4", "--out", "x.png"], "generate", "--plan"),
            (["profile", "--repetitions", "0"], "profile", "--repetitions must be >= 1, got 0"),
            (["profile", "--out", "/nonexistent/p.json"], "profile", "folder '/nonexistent' does not exist"),
            (["loadgen", "--trace", "t.csv", "--concurrency", "0"], "loadgen", "--concurrency must be >= 1"),
        ]
        for (args, command, message) in cases {
            let (status, out, err) = try runCLI(args, in: dir)
            #expect(status != 0, "\(args)")
            #expect(err.contains("Error: ") && err.contains(message), "\(args): \(err)")
            #expect(err.contains("Usage: tetriserve \(command) "), "\(args): \(err)")
            #expect(!err.contains("<subcommand>"), "\(args): \(err)")
            // Nothing ran: no worker started, no image written.
            #expect(!err.contains("workers:") && out.isEmpty, "\(args): \(err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.png").path))
    }

    @Test func negativeNumbersAreReportedAsNumbers() throws {
        let cases: [([String], String)] = [
            (["workload", "--rate", "-3"], "workload option 'rate': must be > 0"),
            (["workload", "--count", "-1"], "workload option 'count': must be >= 1"),
            (["simulate", "--trace", "t.csv", "--gpus", "-2"], "--gpus must be in 1...1024, got -2"),
            (["simulate", "--trace", "t.csv", "--slack-reserve", "-1"], "--slack-reserve must be >= 0 ticks, got -1"),
            (["experiment", "slo-sweep", "--seeds", "-1"], "--seeds must be >= 1, got -1"),
            (["experiment", "slo-sweep", "--slack-reserve", "-3"], "--slack-reserve must be >= 0 ticks, got -3"),
            (["bench", "scheduler", "--pending", "-5"], "--pending must be >= 1, got -5"),
            (["bench", "scheduler", "--gpus-per-node", "-8"], "--gpus-per-node must be >= 1, got -8"),
            (
                ["bench", "scheduler", "--gpus-per-node", "4"],
                "--gpus-per-node 4 is below the profile's largest degree 8"
            ),
            (
                ["bench", "scheduler", "--profile", "sd3-medium-a40x4", "--gpus-per-node", "8"],
                "--gpus-per-node 8 conflicts with profile 'sd3-medium-a40x4', whose islands are for nodes of 4"
            ),
            (["serve", "--port", "-1"], "--port must be in 0...65535, got -1"),
            (["serve", "--slack-reserve", "-2"], "--slack-reserve must be >= 0 ticks, got -2"),
            (
                ["serve", "--engine", "simulated", "--time-scale", "-10"],
                "--time-scale must be in (0, 1000000], got -10"
            ),
            (["loadgen", "--trace", "t.csv", "--time-scale", "-1"], "--time-scale must be > 0"),
        ]
        for (args, message) in cases {
            let trace = try tempFile("id,arrival_s,width,height,steps,slo_s\n1,0,256,256,50,1.5\n")
            let (status, _, err) = try runCLI(args.map { $0 == "t.csv" ? trace : $0 })
            #expect(status != 0, "\(args)")
            #expect(err.contains(message), "\(args): \(err)")
            #expect(!err.contains("Missing value"), "\(args): \(err)")
        }
    }

    func tempFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).csv")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test func serveRefusesOptionsTheChosenEngineDoesNotUse() throws {
        let cases: [([String], String)] = [
            (["serve", "--engine", "simulated", "--workers", "4"], "--workers applies to --engine cpu"),
            (["serve", "--engine", "simulated", "--model", "tiny"], "--model applies to --engine cpu"),
            (["serve", "--engine", "simulated", "--weights-seed", "3"], "--weights-seed applies to --engine cpu"),
            (["serve", "--engine", "cpu", "--time-scale", "10"], "--time-scale applies to --engine simulated"),
            (["serve", "--engine", "cpu", "--gpus", "8"], "--gpus applies to --engine simulated"),
            // The default engine is cpu.
            (["serve", "--time-scale", "1"], "--time-scale applies to --engine simulated"),
        ]
        for (args, message) in cases {
            let (status, _, err) = try runCLI(args)
            #expect(status != 0, "\(args)")
            #expect(err.contains(message), "\(args): \(err)")
        }
    }

    @Test func aBusyPortIsNamedWithTheOptionToChange() throws {
        let busy = try Listener()
        defer { busy.close() }
        let (status, _, err) = try runCLI(["serve", "--engine", "simulated", "--port", String(busy.port)])
        #expect(status != 0)
        #expect(err.contains("port \(busy.port) on 127.0.0.1 is already in use") && err.contains("--port"), "\(err)")
        #expect(!err.contains("errno"), "\(err)")
    }

    @Test func loadgenFailsFastWithoutAServer() throws {
        // A port nobody listens on: bind one, then free it.
        let probe = try Listener()
        let port = probe.port
        probe.close()
        // Arrivals spread over ten minutes: waiting them out would take that long.
        let trace = try tempFile(
            "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,2,5\n2,300,256,256,2,5\n3,600,256,256,2,5\n")
        let started = Date()
        let (status, _, err) = try runCLI(["loadgen", "--url", "http://127.0.0.1:\(port)", "--trace", trace])
        #expect(status != 0)
        #expect(err.contains("no answer from http://127.0.0.1:\(port)") && err.contains("server running"), "\(err)")
        #expect(Date().timeIntervalSince(started) < 120)
    }

    @Test func loadgenExitsNonZeroWhenARequestGetsNoAnswer() throws {
        let probe = try Listener()
        let port = probe.port
        probe.close()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
        server.arguments = ["serve", "--engine", "simulated", "--port", String(port)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        for _ in 0..<300 where !accepts(port: port) { usleep(100_000) }
        try #require(accepts(port: port))
        // A 2-step 256² request answers within its 30 s SLO; a 50-step 2048² one takes seconds of
        // (real-time) simulated work, longer than --timeout.
        let trace = try tempFile("id,arrival_s,width,height,steps,slo_s\n1,0,256,256,2,30\n2,1,2048,2048,50,30\n")
        let (status, out, err) = try runCLI([
            "loadgen", "--url", "http://127.0.0.1:\(port)", "--trace", trace, "--timeout", "1",
        ])
        #expect(status != 0)
        #expect(out.contains("2 requests, 1 met") && out.contains("no answer ×1") && out.contains("200 ×1"), "\(out)")
        #expect(err.contains("1 of 2 requests got no answer") && err.contains("request 2"), "\(err)")
        #expect(err.contains("loadgen CPU: "), "\(err)")
        #expect(!err.contains("\r"))
    }
}

/// `--help` and the README's command table name every command, option, experiment and policy.
@Suite(.serialized) struct HelpAndReadmeTests {
    static let commands = [
        "workload", "simulate", "experiment", "bench scheduler", "serve", "loadgen", "generate", "profile",
    ]

    func help(_ command: String) throws -> String {
        let (status, out, err) = try runCLI(command.split(separator: " ").map(String.init) + ["--help"])
        #expect(status == 0, "\(command): \(err)")
        return out
    }

    @Test func helpListsEveryPolicyAndExperiment() throws {
        for command in ["simulate", "serve", "bench scheduler"] {
            let text = try help(command)
            for policy in Policies.names { #expect(text.contains(policy), "\(command) --help lacks \(policy)") }
        }
        let experiment = try help("experiment")
        for name in ExperimentCatalog.names {
            // Listed with a summary in the discussion, not only in the argument's list.
            #expect(experiment.contains("\(name) ("), "experiment --help lacks a summary of \(name)")
        }
        let top = try help("")
        for command in Self.commands { #expect(top.contains(command.split(separator: " ")[0]), "\(command)") }
    }

    @Test func readmeTableListsEveryCommandOptionExperimentAndPolicy() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `tetriserve ") }
        let options = try NSRegularExpression(pattern: "--[a-z][a-z0-9-]*")
        for command in Self.commands {
            let row = try #require(
                rows.first { $0.hasPrefix("| `tetriserve \(command) ") }, "README row for \(command)")
            let text = try help(command)
            let found = options.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
                String(text[Range($0.range, in: text)!])
            }
            for option in Set(found).subtracting(["--help", "--version"]) {
                #expect(row.contains(option), "README row for \(command) lacks \(option)")
            }
        }
        for name in ExperimentCatalog.names { #expect(readme.contains("`\(name)`"), "README lacks experiment \(name)") }
        for policy in Policies.names { #expect(readme.contains("`\(policy)`"), "README lacks policy \(policy)") }
        // The README names the served model and says which models have random weights.
        #expect(readme.contains("`scenes-v4`"))
        #expect(readme.contains("seeded random weights"))
    }
}
