import BlockIR
import Foundation

/// The fusion plan: the profitability side of fusion. Rules ask it whether recomputing a
/// producer inside a consumer is worth it; it answers from a cost model (extra FLOPs against the
/// consumer's own work) and records each decision so `blockc explain` can print them.
public final class FusionPlan: @unchecked Sendable {
    /// Recomputation is allowed while the extra FLOPs stay within this fraction of the consumer's.
    public var recomputeBudget: Double
    /// The kernel the driver is looking at (rules consider only it); `nil` means every kernel.
    var focus: Int?

    /// Per kernel name: the storages it loads and stores (a cache the driver invalidates when a
    /// kernel changes), so rules find producers and readers without walking every body.
    private var touched: [String: (loads: Set<TensorID>, stores: Set<TensorID>)] = [:]

    /// The storages a kernel loads and stores.
    func access(_ kernel: Kernel, _ program: Program) -> (loads: Set<TensorID>, stores: Set<TensorID>) {
        if let cached = touched[kernel.name] { return cached }
        let value = (
            Set(kernel.body.loadedTensors.map { program.storage(of: $0) }),
            Set(kernel.body.storedTensors.map { program.storage(of: $0) })
        )
        touched[kernel.name] = value
        for t in value.0 { readers[t, default: []].insert(kernel.name) }
        for t in value.1 { writers[t, default: []].insert(kernel.name) }
        return value
    }

    /// Per storage: the kernels (by name) that load it and that store it, for kernels whose
    /// accesses are cached (the driver caches every kernel's before it starts).
    private var readers: [TensorID: Set<String>] = [:]
    private var writers: [TensorID: Set<String>] = [:]

    /// The kernels that load a storage.
    func readers(of storage: TensorID) -> Set<String> { readers[storage] ?? [] }

    /// The kernels that store a storage.
    func writers(of storage: TensorID) -> Set<String> { writers[storage] ?? [] }

    /// Forgets the cached facts of a kernel that changed (or disappeared).
    func invalidate(_ name: String) {
        facts[name] = nil
        if lastFacts?.kernel.name == name { lastFacts = nil }
        guard let old = touched.removeValue(forKey: name) else { return }
        for t in old.loads { readers[t]?.remove(name) }
        for t in old.stores { writers[t]?.remove(name) }
    }

    /// Per kernel name: the facts of its current version, for the tensor list they were computed
    /// with (a program's tensors do not change while it is fused).
    private var facts: [String: KernelFacts] = [:]
    private var factsTensors: [GlobalTensor] = []

    /// The facts of a kernel (remembered until the kernel changes). Comparing an unchanged kernel
    /// with the one remembered costs nothing: its arrays are the very ones recorded.
    func facts(of kernel: Kernel, in program: Program) -> KernelFacts {
        if program.tensors != factsTensors {
            facts = [:]
            lastFacts = nil
            factsTensors = program.tensors
        }
        // Rules ask about the kernel the driver is looking at many times in a row.
        if let last = lastFacts, last.kernel == kernel { return last }
        if let known = facts[kernel.name], known.kernel == kernel {
            lastFacts = known
            return known
        }
        let new = KernelFacts(kernel)
        facts[kernel.name] = new
        lastFacts = new
        return new
    }
    private var lastFacts: KernelFacts?

    /// The storages every tensor viewing which is a temporary, for the tensor list they were
    /// computed from (a program's tensors do not change while it is fused).
    private var temporaries: (tensors: [GlobalTensor], storages: Set<TensorID>)?

    /// Whether a storage and every tensor viewing it are temporaries (so a store to it that no
    /// kernel reads is dead).
    func isTemporary(_ storage: TensorID, _ program: Program) -> Bool {
        if let temporaries, temporaries.tensors == program.tensors { return temporaries.storages.contains(storage) }
        var notTemporary: Set<TensorID> = []
        for id in program.tensors.indices.map(TensorID.init) where program[id].role != .temp {
            notTemporary.insert(program.storage(of: id))
        }
        let storages = Set(
            program.tensors.indices.map(TensorID.init).map { program.storage(of: $0) }.filter {
                !notTemporary.contains($0)
            })
        temporaries = (program.tensors, storages)
        return storages.contains(storage)
    }

    /// Kernels R1 looked at while searching for producers (a work count for the tests).
    var producersVisited = 0
    /// Kernel-local rewrites skipped on a kernel they had found nothing in (a work count).
    var localRewritesSkipped = 0
    /// Re-blockings refused for the local tier's capacity (`FusionStatistics.capacityRefusals`).
    var capacityRefusals = 0

    /// The index of the last kernel before `index` among `writers` (by name), if any.
    func lastWriter(among writers: Set<String>, before index: Int, _ program: Program) -> Int? {
        guard !writers.isEmpty else { return nil }
        var k = index
        while k > 0 {
            k -= 1
            producersVisited += 1
            if writers.contains(program.kernels[k].name) { return k }
        }
        return nil
    }

    /// The kernel indices a rule should consider.
    func candidates(_ program: Program) -> [Int] {
        if let focus { return focus < program.kernels.count ? [focus] : [] }
        return Array(program.kernels.indices)
    }
    /// The decisions taken, in order.
    public private(set) var decisions: [String] = []
    private var seen: Set<String> = []

    /// The target whose tier capacities bound re-blocking.
    public let target: TargetDescription

    /// The cores a kernel's grid should fill (CPU cores, or a GPU's multiprocessors): R15 splits
    /// the reduction loop of a kernel with fewer instances.
    public let cores: Int

    /// The kernels R15 looked at (it looks at each once, and never at the kernels it adds).
    var splitExamined: Set<String> = []

    /// The kernels R18 found no sibling for (it looks at them again only when a merge changes a
    /// kernel within its reach), so its applications cost no pass over the whole program each.
    var siblingExamined: Set<String> = []

    /// A plan with a recompute budget (default: 25 % of the consumer's FLOPs) for a target and a
    /// core count (default: `Fusion.defaultCores(for:)`).
    public init(recomputeBudget: Double = 0.25, target: TargetDescription = .cpu, cores: Int? = nil) {
        self.recomputeBudget = recomputeBudget
        self.target = target
        self.cores = max(1, cores ?? Fusion.defaultCores(for: target))
    }

    /// Whether `producer` may be recomputed at a point of `consumer` that runs `readsPerBlock`
    /// times per block `producer` writes (1 when every block is read once).
    func allowsRecompute(
        producer: Kernel, consumer: Kernel, readsPerBlock: Double, tensor: String, _ program: Program
    ) -> Bool {
        let (p, c) = (facts(of: producer, in: program), facts(of: consumer, in: program))
        let extra = max(0, readsPerBlock - 1) * Double(p.estimatedFlops)
        let budget = recomputeBudget * Double(max(1, c.estimatedFlops))
        let allowed = extra <= budget
        let question = KernelFacts.Question(
            producer: p, tensor: tensor, amount: readsPerBlock, budget: recomputeBudget, duplicate: false)
        c.noteOnce(question, self) {
            allowed
                ? "recompute \(tensor) (from \(producer.name)) in \(consumer.name): \(format(readsPerBlock))× reads per block, \(Int(extra)) extra FLOPs within budget \(Int(budget))"
                : "keep \(tensor) in global memory for \(consumer.name): recomputing \(producer.name) there costs \(Int(extra)) extra FLOPs, over the budget \(Int(budget)) (\(Int(recomputeBudget * 100))% of the consumer's)"
        }
        return allowed
    }

    /// Whether a producer that stays materialized (its tensor has other readers or is an output)
    /// may also be recomputed in `consumer`: only when the copy makes the consumer read at most
    /// one more intermediate (program inputs do not count), so duplicated work stays local and
    /// never chains from kernel to kernel (a residual stream recomputed from all earlier
    /// layers, say); and only when the copy is cheap for what it saves or merges: the producer
    /// does at most `duplicateIntensity` FLOPs per byte of `bytes` (the tensor the consumer no
    /// longer reads), or the copy reads only tensors the consumer reads already
    /// (`readsNothingNew`: it recomputes from the data the consumer streams, where R3 and R10
    /// merge it with the consumer's own work, as attention's row maximum in the sum and output
    /// loops, which compute the same scores). Attention's scores (2·d FLOPs per 4-byte score)
    /// are copied into the max, sum and output loops, where the copies merge; a projection with
    /// a long contraction (`X + A·Wo`: 2·2048 FLOPs per element) is stored once and read by each
    /// of its readers, not recomputed by each (its copies would never merge: the readers end in
    /// different kernels).
    func allowsDuplicate(
        producer: Kernel, consumer: Kernel, newInputs: Int, bytes: Int, readsNothingNew: Bool, tensor: String,
        _ program: Program, noting: Bool = true
    ) -> Bool {
        let p = facts(of: producer, in: program)
        let intensity = Double(p.estimatedFlops) / Double(max(1, bytes))
        let allowed = newInputs <= 1 && (readsNothingNew || intensity <= duplicateIntensity)
        if !allowed, noting {
            let question = KernelFacts.Question(
                producer: p, tensor: tensor, amount: Double(newInputs), budget: 0, duplicate: true)
            facts(of: consumer, in: program).noteOnce(question, self) {
                newInputs > 1
                    ? "keep \(tensor) in global memory for \(consumer.name): it stays materialized for other readers, and recomputing \(producer.name) there would read \(newInputs) more intermediates"
                    : "keep \(tensor) in global memory for \(consumer.name): it stays materialized for other readers, and \(producer.name) does \(Int(intensity)) FLOPs per byte of \(tensor) (over \(Int(duplicateIntensity))) from tensors \(consumer.name) does not read"
            }
        }
        return allowed
    }

    /// The most FLOPs per byte of its tensor a materialized producer may do and still be copied
    /// into a consumer whose reads the copy does not share (`allowsDuplicate`): a matrix product
    /// with a contraction up to 512 long, twice the head size of the largest attention heads.
    public var duplicateIntensity: Double = 256

    /// Whether a producer whose loop runs over chunks chosen by grid axis `axis` may be inlined
    /// where that axis becomes a loop of `consumer`: not when the consumer has fewer instances
    /// than the cores and the producer more (its chunks would run one after another; R15 split
    /// them over a grid axis for the cores).
    func allowsSerializing(producer: Kernel, consumer: Kernel, axis: IndexVar, tensor: String) -> Bool {
        let allowed = consumer.instanceCount >= cores || producer.instanceCount <= consumer.instanceCount
        if !allowed {
            note(
                "keep \(tensor) in global memory for \(consumer.name): inlining \(producer.name) would run its chunks over \(axis.name) in a loop on \(consumer.instanceCount) instances, fewer than the \(cores) cores"
            )
        }
        return allowed
    }

    /// Whether recomputation would be allowed at `readsPerBlock`, without recording anything.
    func wouldAllowRecompute(producer: Kernel, consumer: Kernel, readsPerBlock: Double, _ program: Program) -> Bool {
        let extra = max(0, readsPerBlock - 1) * Double(facts(of: producer, in: program).estimatedFlops)
        return extra <= recomputeBudget * Double(max(1, facts(of: consumer, in: program).estimatedFlops))
    }

    /// Records a decision once.
    func note(_ text: String) {
        if seen.insert(text).inserted { decisions.append(text) }
    }

    private func format(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(format: "%.2f", x)
    }
}

extension Kernel {
    /// A static FLOP estimate: every instruction's FLOPs (2·m·n·k per dot, one per element of
    /// elementwise ops and reductions) times the trip counts of its loops and the grid size.
    /// Loop bounds that depend on grid indices are evaluated at index 0 of those.
    public var estimatedFlops: Int {
        var types: [ValueID: BlockType] = [:]
        return instanceCount * Self.flops(of: body, types: &types)
    }

    static func flops(of body: [Instruction], types: inout [ValueID: BlockType]) -> Int {
        var total = 0
        for inst in body {
            for r in inst.results { types[r.id] = r.type }
            let out = inst.results.first?.type.elementCount ?? 0
            switch inst.op {
            case .dot(let a, _, let ta, _, _):
                let k = types[a].map { ta ? $0.shape.first ?? 1 : $0.shape.last ?? 1 } ?? 1
                total += 2 * out * k
            case .unary, .binary, .select, .mask: total += out
            case .reduce(_, let a, _): total += types[a]?.elementCount ?? out
            case .scan: total += out
            case .loop(let loop):
                for c in loop.carried { types[c.id] = c.type }
                let trips = max(0, loop.upper.evaluate([:]) - loop.lower.evaluate([:]))
                total += trips * flops(of: loop.body, types: &types)
            case .load, .gather, .store, .fill, .index, .broadcast, .transpose, .concat, .yield: break
            }
        }
        return total
    }
}
