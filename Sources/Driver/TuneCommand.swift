import BlockIR
import Codegen
import Foundation
import Graph
import Interpreter
import Schedule

extension Command {
    /// `blockc tune FILE`: times block-size candidates of a graph on this machine and keeps the
    /// fastest in a tuning cache.
    static let tune = Command(
        name: "tune", summary: "time block-size candidates on this CPU and cache the fastest",
        usage: """
            USAGE: blockc tune FILE [--dim ...] [--cache FILE] [--reps N] [--budget SECONDS] [--dry-run]

            Times the graph's compiled C (as 'blockc bench' does) for a small space of block sizes
            (rows i, columns j, reductions k; the kernels of a program share them) on this machine,
            one axis at a time from the target's defaults, in rounds from the best so far until a
            round changes nothing (blocks timed once are not timed again), and keeps the fastest in the tuning cache
            (--cache, default blockc-tune.json; other entries are kept). An entry is keyed by the
            graph's fingerprint (its ops and shapes, so --dim matters), the CPU model, the thread
            count (OMP_NUM_THREADS) and the target. 'emit-c', 'build', 'bench' and 'verify' use it
            with --tuned FILE; without an entry they use the defaults, and the output is the same
            for the same cache. Candidates that do not fit the target's local tier are skipped.
            Progress goes to standard error. --budget bounds the time (default 60 s; no candidate
            starts that could run past it, judged by the slowest so far), --reps the timed
            repetitions per candidate (default 5). --dry-run prints the key and the candidates and
            times nothing.
            """,
        options: [.dim, .target, .cache, .reps, .budget, .dryRun]
    ) { options, console throws(DriverError) in
        guard !options.target.isGPU else {
            throw DriverError("tune times C on this CPU; use --target cpu (GPU schedules are not tuned yet)")
        }
        let path = try options.inputFile(command: "tune")
        let pipeline = try Pipeline(path: path, options: options, console: console)
        guard case .graph(let graph) = try pipeline.parse() else {
            throw DriverError("tune needs a .graph file: a .block program's block sizes are fixed in it")
        }
        let cachePath = options.cachePath ?? "blockc-tune.json"
        // Read the cache first: a file that is not a cache is refused before any timing.
        var cache = try TuningCache.load(cachePath)
        let key = TuningCache.key(for: graph, target: options.target)
        let defaults = LoweringOptions(target: options.target)
        let start: [(key: String, value: Int)] = [
            ("i", defaults.rowBlock), ("j", defaults.columnBlock), ("k", defaults.reductionBlock),
        ]
        let space: [(axis: String, values: [Int])] = [
            ("i", [32, 64, 128, 256]), ("j", [32, 64, 128, 256, 512]), ("k", [32, 64, 128, 256]),
        ]
        if options.dryRun {
            var text = "graph \(graph.name)\nfingerprint \(key.fingerprint)\ncpu \(key.cpu)\nthreads \(key.threads)\n"
            text += "target \(key.target)\nstart \(Self.blockText(start))\n"
            for (axis, values) in space {
                text += "candidates \(axis): \(values.map(String.init).joined(separator: " "))\n"
            }
            console.out(text)
            return
        }
        let began = Date()
        var timed: [String: Double] = [:]  // C source fingerprint → median ms
        var reps = options.reps == CommandLineOptions().reps ? 5 : options.reps
        reps = max(1, reps)
        /// The median time of one candidate, or nil when it does not compile or fit.
        func measure(_ blocks: [(key: String, value: Int)]) -> Double? {
            var o = options
            o.blocks = blocks
            do throws(DriverError) {
                let schedule = try Pipeline(path: path, options: o, console: Console.silent()).scheduled()
                let source = CEmitter.emit(schedule).source
                let id = TuningCache.fingerprint(source)
                if let known = timed[id] {
                    console.err("tune: \(Self.blockText(blocks)): same code as a candidate timed before\n")
                    return known
                }
                let run = try CodegenRun(schedule: schedule, seed: 0, console: Console.silent())
                defer { run.cleanUp() }
                let exe = try run.build(extraFlags: [])
                let output = try run.execute(exe, reps: reps)
                guard let ms = Self.median(output) else { throw DriverError("no timing in the harness's output") }
                timed[id] = ms
                console.err(String(format: "tune: %@: %.3f ms\n", Self.blockText(blocks), ms))
                return ms
            } catch {
                let why = error.text.split(separator: "\n").first.map(String.init) ?? ""
                console.err("tune: \(Self.blockText(blocks)): skipped (\(why))\n")
                return nil
            }
        }
        guard let baseline = measure(start) else {
            throw DriverError("the default block sizes do not compile or run; nothing to compare candidates with")
        }
        var best = (blocks: start, ms: baseline)
        var tried: [String: Double?] = [Self.blockText(start): baseline]  // blocks → median ms (nil: skipped)
        // The slowest candidate so far bounds the next one: stop before it could overrun the budget.
        var longest = Date().timeIntervalSince(began)
        // Rounds of one-axis-at-a-time search from the best so far, until a round changes nothing
        // (the axes interact: LayerNorm+matmul's best k depends on j) or the budget is spent.
        // Candidates whose C was timed before are not timed again.
        var round = 0
        search: while true {
            round += 1
            let start = best.blocks.map(\.value)
            for (axis, values) in space {
                for v in values where v != best.blocks.first(where: { $0.key == axis })?.value {
                    let candidate = best.blocks.map { $0.key == axis ? (key: axis, value: v) : $0 }
                    if round > 1, let known = tried[Self.blockText(candidate)] {
                        if let known, known < best.ms { best = (candidate, known) }
                        continue
                    }
                    guard Date().timeIntervalSince(began) + longest <= options.budget else {
                        console.err("tune: the budget of \(options.budget) s is spent; keeping the best so far\n")
                        break search
                    }
                    let before = Date()
                    let ms = measure(candidate)
                    tried[Self.blockText(candidate)] = ms
                    longest = max(longest, Date().timeIntervalSince(before))
                    if let ms, ms < best.ms { best = (candidate, ms) }
                }
            }
            if best.blocks.map(\.value) == start { break }
            console.err("tune: round \(round) moved to \(Self.blockText(best.blocks)); another round from there\n")
        }
        cache.insert(
            TuningCache.Entry(
                key: key, graph: graph.name, blocks: best.blocks, medianMilliseconds: best.ms,
                defaultMilliseconds: baseline))
        try OutputFile(cachePath).write(cache.json)
        console.out(
            String(
                format: "%@: %@ %.3f ms (defaults %@ %.3f ms, %.2fx) on %@, %d threads; saved in %@\n", graph.name,
                Self.blockText(best.blocks), best.ms, Self.blockText(start), baseline, baseline / best.ms, key.cpu,
                key.threads, cachePath))
    }

    static func blockText(_ blocks: [(key: String, value: Int)]) -> String {
        blocks.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// The `median_ms` field of the benchmark harness's output.
    static func median(_ output: String) -> Double? {
        let fields = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard let k = fields.firstIndex(of: "median_ms"), k + 1 < fields.count else { return nil }
        return Double(fields[k + 1])
    }
}
