import DiTEngine
import Foundation
import Testing

/// Runs the built `tetriserve` with arguments in `directory` (default: the package root);
/// returns (exit status, stdout, stderr).
func runCLI(_ arguments: [String], in directory: URL? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
    p.arguments = arguments
    p.currentDirectoryURL =
        directory
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite(.serialized) struct CLITests {
    func tempFile(_ name: String, _ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)-\(name)")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test func badInputGetsOneLineErrorsAndANonZeroExit() throws {
        let good = try tempFile("t.csv", "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,50,1.5\n")
        let malformed = try tempFile(
            "m.csv", "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,50,1.5\n2,x,256,256,5,1\n")
        let unknownSize = try tempFile("u.csv", "id,arrival_s,width,height,steps,slo_s\n1,0,640,480,50,1.5\n")
        let cases: [([String], String)] = [
            (["simulate", "--trace", good, "--policy", "fifo"], "unknown policy 'fifo'"),
            (["simulate", "--trace", malformed], "trace line 3: column 'arrival_s' 'x' is not a number"),
            (["simulate", "--trace", unknownSize], "resolution 640x480 is not in profile flux1-dev-h100x8"),
            (["simulate", "--trace", good, "--gpus", "0"], "--gpus must be in 1...1024, got 0"),
            (["simulate", "--trace", good, "--policy", "sp8", "--gpus", "4"], "policy sp8 needs at least 8 GPUs"),
            (["workload", "--mix", "zipf"], "--mix must be uniform, skewed"),
            (["experiment", "nope"], "unknown experiment 'nope'"),
        ]
        for (args, message) in cases {
            let (status, _, err) = try runCLI(args)
            #expect(status != 0, "\(args)")
            let lines = err.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(err)")
            #expect(lines.first?.hasPrefix("Error: ") == true && err.contains(message), "\(args): \(err)")
        }
    }

    @Test func simulateWritesTheResultAndBlockLogContracts() throws {
        let trace = try tempFile("w.csv", "")
        let (s1, _, _) = try runCLI(["workload", "--count", "20", "--seed", "4", "--out", trace])
        #expect(s1 == 0)
        let json = trace + ".json"
        let log = trace + ".jsonl"
        let (s2, out, _) = try runCLI(["simulate", "--trace", trace, "--json", json, "--log", log])
        #expect(s2 == 0)
        #expect(out.contains("SLO attainment"))
        let result = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect(result["requests"] as? Int == 20 && result["policy"] as? String == "tetriserve")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let block = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(block.keys) == ["request", "gpus", "degree", "steps", "start_s", "end_s"])
            #expect((block["gpus"] as? [Int])?.count == block["degree"] as? Int)
        }
    }

    @Test func boundBracketsTheOptimumAndKeepsItsLastLine() throws {
        let trace = try tempFile("b.csv", "")
        let (s1, _, _) = try runCLI([
            "workload", "--count", "60", "--seed", "2", "--mix", "skewed", "--slo-scale", "1.5", "--out", trace,
        ])
        #expect(s1 == 0)
        let json = trace + ".json"
        let (s2, out, err) = try runCLI(["bound", "--trace", trace, "--json", json])
        #expect(s2 == 0, "\(err)")
        let lines = out.split(separator: "\n")
        #expect(lines.last?.hasPrefix("upper_bound_sar=") == true, "\(out)")
        #expect(lines.dropLast().last?.contains("achievable_sar=") == true, "\(out)")
        let result = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let achievable = try #require(result["achievable_met"] as? Int)
        let upper = try #require(result["upper_bound_met"] as? Int)
        #expect(achievable >= 1 && achievable <= upper)
        // tetriserve online ("…, N met, …") stays within the bound as well.
        let (s3, sim, _) = try runCLI(["simulate", "--trace", trace])
        #expect(s3 == 0)
        let words = sim.split(separator: " ")
        let online = try #require(words.firstIndex(of: "met,").flatMap { Int(words[$0 - 1]) }, "\(sim)")
        #expect(online <= upper)
        let (s4, skipped, _) = try runCLI(["bound", "--trace", trace, "--no-achievable"])
        #expect(s4 == 0 && !skipped.contains("achievable_sar") && skipped.contains("upper_bound_sar="))
        // The JSON says how many linked groups stopped at the solver time limit; a bad limit is
        // refused by name.
        #expect(result["components_unfinished"] as? Int == 0)
        let (s5, _, bad) = try runCLI(["bound", "--trace", trace, "--solver-time-limit", "-1"])
        #expect(s5 != 0 && bad.contains("--solver-time-limit must be a number of seconds"), "\(bad)")
    }

    /// `--slack-reserve` reaches the scheduler: a 2048² request at SLO scale 1.5 and a 1024² one
    /// arriving 4.79 s into it are both met with the default reserve, and the 2048² one is lost
    /// without it (`LongStepSimulationTests` has the pair).
    @Test func simulateTakesTheSlackReserve() throws {
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("reserve-\(UUID().uuidString).csv")
        try Data("id,arrival_s,width,height,steps,slo_s\n0,0,2048,2048,50,7.5\n1,4.79,1024,1024,50,4.5\n".utf8)
            .write(to: trace)
        let (s1, full, _) = try runCLI(["simulate", "--trace", trace.path])
        let (s2, none, _) = try runCLI(["simulate", "--trace", trace.path, "--slack-reserve", "0"])
        #expect(s1 == 0 && full.contains("2 requests, 2 met"), "\(full)")
        #expect(s2 == 0 && none.contains("2 requests, 1 met"), "\(none)")
    }
}
