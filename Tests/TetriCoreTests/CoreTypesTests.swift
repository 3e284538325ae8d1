import Testing

@testable import TetriCore

@Suite struct GPUSetTests {
    @Test func basicOperations() {
        var s = GPUSet([3, 1, 70, 1023])
        #expect(s.count == 4)
        #expect(s.ids == [1, 3, 70, 1023])
        #expect(s.contains(70) && !s.contains(2))
        s.remove(3)
        #expect(s.ids == [1, 70, 1023])
        #expect(s.lowest(2).ids == [1, 70])
        #expect(GPUSet(first: 8).subtracting(GPUSet([0, 7])).ids == [1, 2, 3, 4, 5, 6])
        #expect(GPUSet([1, 2]).isSubset(of: GPUSet(first: 4)))
        #expect(!GPUSet([1, 9]).isSubset(of: GPUSet(first: 4)))
        #expect(GPUSet([1, 2]).isDisjoint(with: GPUSet([3, 4])))
        #expect(GPUSet().isEmpty && GPUSet().ids.isEmpty)
        #expect(GPUSet([5, 6]).union(GPUSet([1])) == GPUSet([1, 5, 6]))
        #expect(GPUSet([5, 6]).intersection(GPUSet([6, 7])) == GPUSet([6]))
    }

    @Test func matchesSetOfIntOnRandomOperations() {
        var rng = TestRandom(state: 7)
        for _ in 0..<200 {
            let a = (0..<20).map { _ in Int(rng.next() % 1024) }
            let b = (0..<20).map { _ in Int(rng.next() % 1024) }
            let sa = GPUSet(a)
            let sb = GPUSet(b)
            #expect(sa.union(sb).ids == Set(a).union(b).sorted())
            #expect(sa.intersection(sb).ids == Set(a).intersection(b).sorted())
            #expect(sa.subtracting(sb).ids == Set(a).subtracting(b).sorted())
            #expect(sa.count == Set(a).count)
            let n = Int(rng.next() % 25)
            #expect(sa.lowest(n).ids == Array(Set(a).sorted().prefix(n)))
        }
    }
}

@Suite struct CostModelTests {
    @Test func indexesClassesAndDegrees() throws {
        #expect(flux.resolutionNames == ["256x256", "512x512", "1024x1024", "2048x2048"])
        #expect(flux.degrees == [1, 2, 4, 8])
        #expect(flux.stepTime(resolution: 3, degree: 8) == 136_900)
        #expect(flux.stepTime(resolution: 0, degree: 1) == 28_000)
        #expect(flux.latentTokens == [256, 1024, 4096, 16384])
    }

    @Test func rejectsBadProfiles() {
        var p = fluxProfile
        p.resolutions["512x512"]!.stepMs["4"] = nil
        #expect(throws: ProfileError.missingStepTime(resolution: "512x512", degree: 4)) {
            try CostModel(profile: p)
        }
        p = fluxProfile
        p.gpus = 0
        #expect(throws: ProfileError.invalidGPUCount(0)) { try CostModel(profile: p) }
        p = fluxProfile
        p.degrees = [1, 2, 4, 16]
        #expect(throws: ProfileError.invalidDegree(16, gpus: 8)) { try CostModel(profile: p) }
        p = fluxProfile
        p.resolutions["big"] = p.resolutions["512x512"]
        #expect(throws: ProfileError.badResolutionKey("big")) { try CostModel(profile: p) }
        p = fluxProfile
        p.resolutions["256x256"]!.stepMs["2"] = -1
        #expect(throws: ProfileError.invalidStepTime(resolution: "256x256", degree: 2, -1)) {
            try CostModel(profile: p)
        }
        #expect(
            ProfileError.missingStepTime(resolution: "512x512", degree: 4).description
                == "profile resolution 512x512: 'step_ms' has no entry for degree 4")
    }

    @Test func resolutionParsing() {
        #expect(Resolution(parsing: "1024x768") == Resolution(width: 1024, height: 768))
        #expect(Resolution(parsing: "1024") == nil)
        #expect(Resolution(parsing: "0x5") == nil)
        #expect(Resolution(parsing: "axb") == nil)
    }

    @Test func policyErrors() {
        #expect(throws: PolicyError.unknownPolicy("sp3")) { try Policies.make("sp3", model: flux, gpus: 8) }
        #expect(throws: PolicyError.tooFewGPUs(policy: "sp8", needs: 8, gpus: 4)) {
            try Policies.make("sp8", model: flux, gpus: 4)
        }
        #expect(throws: PolicyError.invalidGPUCount(0)) { try Policies.make("tetriserve", model: flux, gpus: 0) }
        #expect(Policies.rsspDegrees(model: flux, gpus: 8) == [1, 1, 2, 8])
        #expect(Policies.rsspDegrees(model: flux, gpus: 4) == [1, 1, 2, 4])
    }
}
