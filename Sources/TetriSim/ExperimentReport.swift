import Foundation

/// Renders experiment points as Markdown, CSV and SVG line charts.
public struct ExperimentReport: Sendable {
    public var plan: ExperimentPlan
    public var points: [ExperimentPoint]
    public var seeds: Int

    public init(plan: ExperimentPlan, points: [ExperimentPoint], seeds: Int) {
        self.plan = plan
        self.points = points
        self.seeds = seeds
    }

    func series(in panel: String) -> [String] {
        points.filter { $0.panel == panel }.map(\.series).uniqued()
    }

    func xs(in panel: String) -> [Double] {
        points.filter { $0.panel == panel }.map(\.x).uniqued().sorted()
    }

    func point(_ panel: String, _ series: String, _ x: Double) -> ExperimentPoint? {
        points.first { $0.panel == panel && $0.series == series && $0.x == x }
    }

    /// Per panel and x: the subject's SAR, the best baseline's, and the relative gain.
    public struct Gain: Sendable, Equatable {
        public var panel: String
        public var x: Double
        public var subject: Double
        public var best: Double
        public var bestSeries: String
        /// `(subject − best) / best`; nil when the best baseline met nothing.
        public var relative: Double?
        /// True when the subject's SAR is at least every baseline's.
        public var isHighest: Bool
    }

    public func gains() -> [Gain] {
        guard let subject = plan.subject else { return [] }
        var out: [Gain] = []
        for panel in plan.panels {
            for x in xs(in: panel) {
                guard let s = point(panel, subject, x) else { continue }
                let base = plan.baselines.compactMap { point(panel, $0, x) }
                guard let best = base.max(by: { $0.sar < $1.sar }) else { continue }
                out.append(
                    Gain(
                        panel: panel, x: x, subject: s.sar, best: best.sar, bestSeries: best.series,
                        relative: best.sar > 0 ? (s.sar - best.sar) / best.sar : nil, isHighest: s.sar >= best.sar))
            }
        }
        return out
    }

    /// Mean relative gain of the subject over the best baseline in a panel (points where the
    /// best baseline met something).
    public func meanGain(panel: String) -> Double? {
        let g = gains().filter { $0.panel == panel }.compactMap(\.relative)
        return g.isEmpty ? nil : g.reduce(0, +) / Double(g.count)
    }

    /// Mean absolute SAR difference between the subject and the best baseline in a panel (every
    /// point, in SAR units).
    public func meanAbsoluteGain(panel: String) -> Double? {
        let g = gains().filter { $0.panel == panel }
        return g.isEmpty ? nil : g.map { $0.subject - $0.best }.reduce(0, +) / Double(g.count)
    }

    /// What limits SAR in a panel: the share no schedule can meet alone, the further share the
    /// bound's capacity constraints remove, and the bound series' distance to the bound.
    public func limitsSentence(panel: String) -> String? {
        guard let series = plan.boundSeries else { return nil }
        var infeasible: [(Double, Double)] = []
        var capacity: [(Double, Double)] = []
        var gap: [(Double, Double)] = []
        var below: [(Double, Double)] = []
        for x in xs(in: panel) {
            guard let p = points.first(where: { $0.panel == panel && $0.x == x && $0.bound != nil }),
                let b = p.bound, let f = p.infeasibleShare, let q = point(panel, series, x)
            else { continue }
            infeasible.append((f, x))
            capacity.append((max(0, 1 - f - b), x))
            gap.append((b - q.sar, x))
            if let a = p.achievable { below.append((a - q.sar, x)) }
        }
        guard let worstF = infeasible.max(by: { $0.0 < $1.0 }), let worstC = capacity.max(by: { $0.0 < $1.0 }),
            let worstG = gap.max(by: { $0.0 < $1.0 })
        else { return nil }
        func at(_ v: (Double, Double)) -> String { String(format: "%.3f", v.0) + " at \(Self.number(v.1))" }
        return "What limits SAR here: requests no schedule can meet even alone (up to \(at(worstF))), "
            + "node capacity (the bound a further up to \(at(worstC)) below that), and the scheduler "
            + "(\(series) up to \(at(worstG)) below the bound"
            + (below.max(by: { $0.0 < $1.0 }).map {
                $0.0 > 0
                    ? ", and up to \(at($0)) below a clairvoyant schedule that exists"
                    : ", never below a clairvoyant schedule that exists"
            } ?? "") + ")."

    }

    /// The upper bound at a panel and x (every series there runs the same traces).
    public func bound(_ panel: String, _ x: Double) -> Double? {
        points.first { $0.panel == panel && $0.x == x && $0.bound != nil }?.bound
    }

    /// The clairvoyant schedule's SAR at a panel and x (``Clairvoyant``).
    public func achievable(_ panel: String, _ x: Double) -> Double? {
        points.first { $0.panel == panel && $0.x == x && $0.achievable != nil }?.achievable
    }

    /// The bound series' SAR over the clairvoyant schedule's at every point of a panel.
    public func achievableRatios(panel: String) -> [Double] {
        guard let series = plan.boundSeries else { return [] }
        return xs(in: panel).compactMap { x in
            guard let a = achievable(panel, x), a > 0, let p = point(panel, series, x) else { return nil }
            return p.sar / a
        }
    }

    /// The bound series' SAR over the bound at every point of a panel (points with a positive bound).
    public func boundRatios(panel: String) -> [Double] {
        guard let series = plan.boundSeries else { return [] }
        return xs(in: panel).compactMap { x in
            guard let b = bound(panel, x), b > 0, let p = point(panel, series, x) else { return nil }
            return p.sar / b
        }
    }

    public var markdown: String {
        var s = "## \(plan.title)\n\n"
        s += "Mean over \(seeds) seed\(seeds == 1 ? "" : "s"); each cell is SLO attainment (mean latency s).\n\n"
        for panel in plan.panels {
            let names = series(in: panel)
            s += "### \(panel)\n\n| \(plan.xName) | " + names.joined(separator: " | ") + " |"
            let gainCol = plan.subject != nil && !plan.baselines.isEmpty
            let boundCols =
                plan.boundSeries.map { b in names.contains(b) && bound(panel, xs(in: panel)[0]) != nil }
                ?? false
            if boundCols { s += " clairvoyant | bound | \(plan.boundSeries!) / bound |" }
            if gainCol { s += " gain vs best fixed |" }
            s +=
                "\n|---|" + String(repeating: "---|", count: names.count + (gainCol ? 1 : 0) + (boundCols ? 3 : 0))
                + "\n"
            let gains = self.gains()
            for x in xs(in: panel) {
                s += "| \(Self.number(x)) |"
                let best = names.compactMap { point(panel, $0, x)?.sar }.max() ?? 0
                for n in names {
                    guard let p = point(panel, n, x) else {
                        s += " – |"
                        continue
                    }
                    let cell = String(format: "%.3f (%.2f)", p.sar, p.latencyMean)
                    s += p.sar == best ? " **\(cell)** |" : " \(cell) |"
                }
                if boundCols {
                    if let b = bound(panel, x), let p = point(panel, plan.boundSeries!, x) {
                        s += achievable(panel, x).map { String(format: " %.3f |", $0) } ?? " – |"
                        s += String(format: " %.3f |", b) + (b > 0 ? String(format: " %.3f |", p.sar / b) : " n/a |")
                    } else {
                        s += " – | – | – |"
                    }
                }
                if gainCol {
                    if let g = gains.first(where: { $0.panel == panel && $0.x == x }) {
                        s +=
                            g.relative.map { String(format: " %+.1f%%", $0 * 100) + " over \(g.bestSeries) |" }
                            ?? " n/a |"
                    } else {
                        s += " – |"
                    }
                }
                s += "\n"
            }
            var summary: [String] = []
            if let m = meanGain(panel: panel), let a = meanAbsoluteGain(panel: panel) {
                summary.append(
                    "Gain of \(plan.subject!) over the best fixed policy at each point: mean relative "
                        + String(format: "%+.1f%%", m * 100) + ", mean absolute " + String(format: "%+.3f", a)
                        + " SAR.")
            }
            let ratios = boundRatios(panel: panel)
            if boundCols, let lo = ratios.min() {
                summary.append(
                    "\(plan.boundSeries!) / bound: "
                        + String(format: "min %.3f, mean %.3f", lo, ratios.reduce(0, +) / Double(ratios.count))
                        + ".")
                let toAchievable = achievableRatios(panel: panel)
                if let a = toAchievable.min() {
                    summary.append(
                        "\(plan.boundSeries!) / clairvoyant: "
                            + String(
                                format: "min %.3f, mean %.3f", a, toAchievable.reduce(0, +) / Double(toAchievable.count)
                            )
                            + ".")
                }
            }
            if boundCols, let limits = limitsSentence(panel: panel) { summary.append(limits) }
            if !summary.isEmpty { s += "\n" + summary.joined(separator: " ") + "\n" }
            s += "\n"
        }
        for n in plan.notes { s += "- \(n)\n" }
        return s
    }

    public var csv: String {
        var s = "panel,series,\(plan.xName.replacingOccurrences(of: " ", with: "_")),seeds,sar_mean,sar_min,sar_max,"
        s += "latency_mean_s,latency_p99_s,gpu_seconds,average_degree,bound,clairvoyant\n"
        for p in points {
            s += "\(p.panel),\(p.series),\(Self.number(p.x)),\(p.seeds),"
            s += String(
                format: "%.4f,%.4f,%.4f,%.4f,%.4f,%.2f,%.3f,", p.sar, p.sarMin, p.sarMax, p.latencyMean, p.latencyP99,
                p.gpuSeconds, p.averageDegree)
            s += p.bound.map { String(format: "%.4f", $0) } ?? ""
            s += "," + (p.achievable.map { String(format: "%.4f", $0) } ?? "")
            s += "\n"
        }
        return s
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(format: "%g", x)
    }

    /// An SVG line chart of SLO attainment against x for one panel.
    public func svg(panel: String) -> String {
        let w = 640.0
        let h = 400.0
        let left = 60.0
        let right = 150.0
        let top = 40.0
        let bottom = 50.0
        let xs = self.xs(in: panel)
        let lo = xs.first ?? 0
        let hi = xs.last ?? 1
        let span = hi > lo ? hi - lo : 1
        func px(_ x: Double) -> Double { left + (x - lo) / span * (w - left - right) }
        func py(_ y: Double) -> Double { top + (1 - y) * (h - top - bottom) }
        let colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" "
        s += "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"24\" font-size=\"14\">\(Self.escape(plan.name)): \(Self.escape(panel))</text>\n"
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        for i in 0...5 {
            let y = Double(i) / 5
            s +=
                "<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(w - right))\" y2=\"\(f(py(y)))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(f(y))</text>\n"
        }
        for x in xs {
            s += "<text x=\"\(f(px(x)))\" y=\"\(f(h - bottom + 18))\" text-anchor=\"middle\">\(Self.number(x))</text>\n"
        }
        s += "<text x=\"\(f((left + w - right) / 2))\" y=\"\(f(h - 10))\" text-anchor=\"middle\">"
        s += "\(Self.escape(plan.xName))</text>\n"
        s += "<text x=\"14\" y=\"\(f(h / 2))\" transform=\"rotate(-90 14 \(f(h / 2)))\" text-anchor=\"middle\">"
        s += "SLO attainment</text>\n"
        for (k, name) in series(in: panel).enumerated() {
            let c = colors[k % colors.count]
            let pts = xs.compactMap { x in point(panel, name, x).map { (px(x), py($0.sar)) } }
            let list = pts.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"\(list)\"/>\n"
            for p in pts {
                s += "<circle cx=\"\(f(p.0))\" cy=\"\(f(p.1))\" r=\"3\" fill=\"\(c)\"/>\n"
            }
            let ly = top + 10 + Double(k) * 18
            s += "<line x1=\"\(f(w - right + 10))\" y1=\"\(f(ly))\" x2=\"\(f(w - right + 30))\" y2=\"\(f(ly))\" "
            s += "stroke=\"\(c)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(f(w - right + 36))\" y=\"\(f(ly + 4))\">\(Self.escape(name))</text>\n"
        }
        s += "</svg>\n"
        return s
    }

    static func escape(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
