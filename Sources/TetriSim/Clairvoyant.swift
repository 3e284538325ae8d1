import TetriCore

/// A lower bound on the best SLO attainment any schedule reaches on a trace: the attainment of
/// one schedule that exists.
///
/// ``UpperBound`` picks a set of requests that its constraints allow to be met together
/// (``UpperBound/chosen``). A scheduler that knew the future could turn every other request away
/// at arrival and schedule only that set. This runs `tetriserve` so, on the chosen requests alone,
/// with its admission on and off at several round lengths, and keeps the best run. Requests it
/// meets are met by a valid schedule of the whole trace (the turned-away ones miss), so the count
/// is achievable: the optimum lies between it and the upper bound. An online scheduler does not know the future, so
/// it need not reach this figure; the gap between the two bounds is what neither side has proved.
public struct Clairvoyant: Sendable, Equatable {
    /// Requests in the whole trace.
    public var requests: Int
    /// Requests the bound's set offered to the scheduler.
    public var offered: Int
    /// Requests the clairvoyant schedule meets.
    public var met: Int

    public var sar: Double { requests == 0 ? 1 : Double(met) / Double(requests) }

    /// The granularities every clairvoyant schedule is tried at (besides the one asked for).
    public static let granularities = [1, 2, 3, 4, 5]

    /// Schedules `bound`'s chosen requests of `trace` with `tetriserve` (round length capped by
    /// the chosen requests' tightest SLO, as `simulate` does), with and without admission, at
    /// each of ``granularities`` and `granularity`, and keeps the best: each run is a schedule
    /// that exists, so the best of them is too.
    public static func achievable(
        trace: Trace, bound: UpperBound, model: CostModel, gpus: Int,
        granularity: Int = RoundScheduler.defaultGranularity
    ) throws -> Clairvoyant {
        let chosen = Set(bound.chosen)
        let offered = trace.requests.filter { chosen.contains($0.id) }
        guard !offered.isEmpty else { return Clairvoyant(requests: trace.requests.count, offered: 0, met: 0) }
        let subset = try Trace(offered)
        let floor = offered.map(\.slo).min()
        var best = 0
        for g in Set(granularities + [granularity]).sorted() {
            for admission in [true, false] {
                var scheduler = try Policies.make(
                    "tetriserve", model: model, gpus: gpus, granularity: g, sloFloor: floor, admission: admission)
                let outcome = try Simulator.run(trace: subset, model: model, gpus: gpus, scheduler: &scheduler)
                best = max(best, outcome.completions.filter(\.met).count)
            }
        }
        return Clairvoyant(requests: trace.requests.count, offered: offered.count, met: best)
    }
}
