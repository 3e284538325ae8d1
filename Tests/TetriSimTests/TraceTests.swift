import Testing

@testable import TetriCore
@testable import TetriSim

@Suite struct TraceTests {
    @Test func csvRoundTrips() throws {
        let t = try WorkloadSpec(mix: .skewed, count: 50, sloScale: 1.3, seed: 9).generate()
        #expect(try Trace(csv: t.csv) == t)
        #expect(t.csv.hasPrefix("id,arrival_s,width,height,steps,slo_s\n"))
        #expect(Trace.format(1_500_000) == "1.500000" && Trace.format(7) == "0.000007")
    }

    @Test func parsesAndSortsRows() throws {
        let t = try Trace(csv: "id,arrival_s,width,height,steps,slo_s\n2,1.5,512,512,50,2\n\n1,0.25,256,256,10,1.5\n")
        #expect(t.requests.map(\.id) == [1, 2])
        #expect(t.requests[0].deadline == 1_750_000)
    }

    @Test(arguments: [
        ("", "trace must start with the header 'id,arrival_s,width,height,steps,slo_s', file is empty"),
        ("a,b\n", "trace must start with the header 'id,arrival_s,width,height,steps,slo_s', found 'a,b'"),
        (
            "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,50\n",
            "trace line 2: expected 6 columns (id,arrival_s,width,height,steps,slo_s), found 5"
        ),
        (
            "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,50,1\n2,x,256,256,50,1\n",
            "trace line 3: column 'arrival_s' 'x' is not a number"
        ),
        (
            "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,0,1\n",
            "trace line 2: column 'steps' must be in 1...10000"
        ),
        ("id,arrival_s,width,height,steps,slo_s\n1,0,256,256,5,-1\n", "trace line 2: column 'slo_s' must be > 0"),
        (
            "id,arrival_s,width,height,steps,slo_s\n1,0,256,256,5,1\n1,1,256,256,5,1\n",
            "trace has request id 1 more than once (column 'id')"
        ),
    ])
    func rejectsMalformedInput(csv: String, message: String) {
        do {
            _ = try Trace(csv: csv)
            Issue.record("accepted malformed trace")
        } catch {
            #expect(error.description == message)
        }
    }
}

@Suite struct WorkloadTests {
    @Test func sameSeedSameTrace() throws {
        let a = try WorkloadSpec(seed: 4).generate()
        #expect(a == (try WorkloadSpec(seed: 4).generate()))
        #expect(a != (try WorkloadSpec(seed: 5).generate()))
    }

    @Test func skewedSharesFollowTokenCounts() {
        let p = Mix.skewed.probabilities(latentTokens: WorkloadSpec.paperTokens)
        let want = [0.167, 0.175, 0.211, 0.447]
        for (a, b) in zip(p, want) { #expect(abs(a - b) < 0.001) }
        #expect(Mix(parsing: "1,1,2,4") == .weights([1, 1, 2, 4]))
        #expect(Mix(parsing: "1,-1") == nil && Mix(parsing: "0,0") == nil && Mix(parsing: "zipf") == nil)
    }

    @Test(arguments: [1.0, 3.0])
    func drawsRatesMixesAndSLOs(burstiness: Double) throws {
        let t = try WorkloadSpec(
            mix: .weights([1, 0, 1, 2]), ratePerMinute: 30, count: 20000, sloScale: 1.2, steps: 28, seed: 1,
            burstiness: burstiness
        ).generate()
        let reqs = t.requests
        let meanGap = Double(reqs.last!.arrival) / 1e6 / Double(reqs.count)
        #expect(abs(meanGap - 2.0) < 0.1)
        let counts = Dictionary(grouping: reqs, by: \.resolution).mapValues(\.count)
        #expect(counts[Resolution(width: 512, height: 512)] == nil)
        #expect(abs(Double(counts[Resolution(width: 2048, height: 2048)]!) / 20000 - 0.5) < 0.02)
        #expect(reqs.allSatisfy { $0.steps == 28 })
        #expect(reqs.first { $0.resolution.width == 1024 }!.slo == 3_600_000)
        // Burstier arrivals: gaps vary more.
        let gaps = zip(reqs.dropFirst(), reqs).map { Double($0.arrival - $1.arrival) / 1e6 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let cv = (gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)).squareRoot() / mean
        #expect(abs(cv - burstiness) < 0.15 * burstiness)
    }

    @Test func rejectsBadSettings() {
        #expect(throws: WorkloadError.invalid("rate", "must be > 0")) {
            try WorkloadSpec(ratePerMinute: 0).generate()
        }
        #expect(throws: WorkloadError.invalid("mix", "custom weights need one value per class (4), got 2")) {
            try WorkloadSpec(mix: .weights([1, 2])).generate()
        }
    }
}
