import BlockIR

/// Facts about one version of a kernel that several rules ask for, computed at most once.
///
/// The plan keeps one per kernel (`FusionPlan.facts(of:in:)`) and drops it when the kernel
/// changes, so a kernel looked at again unchanged (because a neighbour changed) costs no new
/// walks: its value types, value numbers and FLOPs, what its stores compute, and which
/// kernel-local rewrites already found nothing in it are all remembered.
final class KernelFacts {
    /// The kernel the facts are about.
    let kernel: Kernel

    /// Makes the (not yet computed) facts of a kernel.
    init(_ kernel: Kernel) { self.kernel = kernel }

    /// The type of every value the kernel defines (`Kernel.valueTypes()`).
    private(set) lazy var valueTypes: [ValueID: BlockType] = kernel.valueTypes()

    /// The next free value number (`Kernel.nextValueNumber`).
    private(set) lazy var nextValueNumber: Int = kernel.nextValueNumber

    /// Every value read anywhere in the kernel (operands, loop initial values, yields).
    private(set) lazy var readValues: Set<ValueID> = {
        var read: Set<ValueID> = []
        kernel.walk { inst in inst.op.forEachOperand { read.insert($0) } }
        return read
    }()

    /// Whether some instruction that stores nothing and yields nothing (a loop: whose body
    /// stores nothing) has no result that is read anywhere.
    private(set) lazy var hasUnreadInstruction: Bool = {
        var found = false
        kernel.walk { inst in
            guard !found else { return }
            switch inst.op {
            case .store, .yield: return
            case .loop(let loop): guard loop.body.isStoreFree else { return }
            case .load, .fill, .index, .unary, .binary, .select, .gather, .broadcast, .reduce, .scan, .dot, .transpose,
                .concat, .mask:
                break
            }
            found = inst.results.allSatisfy { !readValues.contains($0.id) }
        }
        return found
    }()

    /// Whether some loop has a result that is read nowhere.
    private(set) lazy var hasUnreadLoopResult: Bool = {
        var found = false
        kernel.walk { inst in
            guard !found, case .loop = inst.op else { return }
            found = inst.results.contains { !readValues.contains($0.id) }
        }
        return found
    }()

    /// The static FLOP estimate (`Kernel.estimatedFlops`).
    private(set) lazy var estimatedFlops: Int = kernel.estimatedFlops

    /// Per grid variable: `Kernel.blockSize(of:)`.
    private var blockSizes: [IndexVar: Int?] = [:]

    /// The block size `B` when `v` appears only as `v * B +: B` slice starts.
    func blockSize(of v: IndexVar) -> Int? {
        if let known = blockSizes[v] { return known }
        let size = kernel.blockSize(of: v)
        blockSizes[v] = size
        return size
    }

    /// Per grid axis: the kernel with the axis folded into its block and retyped, when its block
    /// size is known and the result fits the target's local tier (what R11 would make).
    private var widenings: [IndexVar: Kernel?] = [:]

    /// The kernel widened over a grid axis (R11), if that fits the target's local tier.
    func widened(over variable: IndexVar, _ program: Program, _ target: TargetDescription) -> Kernel? {
        if let known = widenings[variable] { return known }
        var result: Kernel?
        if let axis = kernel.grid.first(where: { $0.variable == variable }), let size = blockSize(of: variable) {
            result = FusionRule.widened(kernel, axis: axis, size: size, program, target)
        }
        widenings[variable] = result
        return result
    }

    /// The grid axes R11 found too wide to fold and noted so (the note is the same every time).
    var keptBlocked: Set<IndexVar> = []

    /// A question the plan answered about this kernel as a consumer: its answer and the text
    /// noted for it are functions of the producer's version, the tensor, the amount (reads per
    /// block, or new intermediates) and the budget, and of this kernel's version.
    struct Question {
        var producer: KernelFacts
        var tensor: String
        var amount: Double
        var budget: Double
        var duplicate: Bool

        func isSame(as other: Question) -> Bool {
            producer === other.producer && tensor == other.tensor && amount == other.amount
                && budget == other.budget && duplicate == other.duplicate
        }
    }

    /// The questions already noted (R1 asks them again each time it looks at the kernel).
    private var noted: [Question] = []

    /// Notes a decision the first time its question is asked about this kernel version; `text`
    /// is built only then.
    func noteOnce(_ question: Question, _ plan: FusionPlan, _ text: () -> String) {
        guard !noted.contains(where: { $0.isSame(as: question) }) else { return }
        noted.append(question)
        plan.note(text())
    }

    /// The kernel-local rewrites (by name) that found nothing to do in the kernel.
    var unmatched: LocalRewrites = []

    /// Per tensor: what the kernel stores to it, as R1 inlines it (`nil` when R1 cannot).
    private var producedBlocks: [TensorID: ProducedBlock?] = [:]

    /// The block the kernel stores to `tensor`, when it stores it exactly once, at its top level,
    /// and stores no other view of its storage.
    func producedBlock(of tensor: TensorID, _ program: Program) -> ProducedBlock? {
        if let known = producedBlocks[tensor] { return known }
        let block = ProducedBlock(kernel, tensor, program, types: valueTypes)
        producedBlocks[tensor] = block
        return block
    }
}

/// A block a kernel stores at its top level, and the instructions that compute it.
struct ProducedBlock {
    /// The stored value.
    let value: ValueID
    /// The store's access.
    let access: [AxisAccess]
    /// The stored value's shape.
    let shape: [Int]?
    /// The instructions the stored value depends on (the kernel's top level, in order).
    let slice: [Instruction]
    /// The storages `slice` loads.
    let reads: Set<TensorID>

    /// The block `kernel` stores to `tensor`, or `nil` unless it has one top-level store to
    /// `tensor` and stores no other tensor viewing the same storage.
    init?(_ kernel: Kernel, _ tensor: TensorID, _ program: Program, types: [ValueID: BlockType]) {
        let stores = kernel.body.filter {
            if case .store(_, let t, _) = $0.op { return t == tensor } else { return false }
        }
        let storage = program.storage(of: tensor)
        guard stores.count == 1, case .store(let stored, _, let access) = stores[0].op,
            kernel.body.storedTensors.filter({ program.storage(of: $0) == storage }) == [tensor]
        else { return nil }
        value = stored
        self.access = access
        shape = types[stored]?.shape
        let needed = kernel.body.backwardSlice(from: [stored])
        slice = kernel.body.filter { inst in inst.results.contains { needed.contains($0.id) } }
        reads = Set(slice.loadedTensors.map { program.storage(of: $0) })
    }
}

extension Op {
    /// Calls `visit` on each SSA operand the op reads directly (`operands`, without building an
    /// array).
    func forEachOperand(_ visit: (ValueID) -> Void) {
        switch self {
        case .load, .fill, .index: return
        case .store(let v, _, _): visit(v)
        case .unary(_, let a), .broadcast(let a, _), .reduce(_, let a, _), .transpose(let a), .mask(let a, _, _, _, _),
            .gather(_, _, let a, _), .scan(_, let a, _, _, _):
            visit(a)
        case .select(let c, let a, let b):
            visit(c)
            visit(a)
            visit(b)
        case .binary(_, let a, let b), .dot(let a, let b, _, _, _), .concat(let a, let b, _):
            visit(a)
            visit(b)
        case .loop(let l): l.initial.forEach(visit)
        case .yield(let vs): vs.forEach(visit)
        }
    }
}
