import BlockIR

/// A rewrite rule of the fusion pass: a named value whose `rewrite` finds the first place in a
/// program where the rule applies (in program order) and returns the rewritten program, or `nil`
/// when it applies nowhere. Rules decide legality only; profitability questions go to the
/// `FusionPlan` they are given.
public struct FusionRule: Sendable {
    /// The short identifier from the rule catalogue (`R1`, `R7`, …).
    public let id: String
    /// The name used by `--only-rule` (`inline-producer`, `hoist`, …).
    public let name: String
    /// One line: what the rule does.
    public let summary: String
    let rewrite: @Sendable (Program, FusionPlan) -> RuleApplication?

    /// Makes a rule.
    public init(
        id: String, name: String, summary: String,
        rewrite: @escaping @Sendable (Program, FusionPlan) -> RuleApplication?
    ) {
        self.id = id
        self.name = name
        self.summary = summary
        self.rewrite = rewrite
    }

    /// Applies the rule once, if it matches anywhere.
    public func apply(_ program: Program, plan: FusionPlan) -> RuleApplication? { rewrite(program, plan) }
}

/// One successful rule application.
///
/// A rule that rewrites one kernel says so (`replacing` or `removing` a kernel) instead of
/// building a whole new program: the driver then changes its program in place, so a step costs
/// the size of the kernel it rewrites, never the size of the program.
public struct RuleApplication: Sendable {
    /// What a step changes in the program.
    public enum Change: Sendable {
        /// The kernel at an index becomes this kernel.
        case replace(Int, Kernel)
        /// The kernel at an index is removed.
        case remove(Int)
        /// The kernel at the first index becomes this kernel, and the (later) kernel at the
        /// second index is removed: a merge (R18).
        case merge(Int, Kernel, removing: Int)
        /// The whole program becomes this one.
        case program(Program)
    }

    /// What changed in the program.
    public var change: Change
    /// Where: the kernel (and loop) rewritten.
    public var place: String
    /// What changed, in a few words.
    public var detail: String
    /// Kernels whose computation now also runs in `place` (a producer R1 inlined there).
    public var absorbed: [String]

    /// Makes an application record that replaces the whole program.
    public init(program: Program, place: String, detail: String, absorbed: [String] = []) {
        self.init(change: .program(program), place: place, detail: detail, absorbed: absorbed)
    }

    /// Makes an application record.
    public init(change: Change, place: String, detail: String, absorbed: [String] = []) {
        self.change = change
        self.place = place
        self.detail = detail
        self.absorbed = absorbed
    }

    /// Makes the change to a program (in place: the kernels are not copied when `program` holds
    /// the only reference to them).
    public func apply(to program: inout Program) {
        switch change {
        case .replace(let index, let kernel): program.kernels[index] = kernel
        case .remove(let index): program.kernels.remove(at: index)
        case .merge(let index, let kernel, let removed):
            program.kernels[index] = kernel
            program.kernels.remove(at: removed)
        case .program(let p): program = p
        }
    }

    /// The rewritten program.
    public func applied(to program: Program) -> Program {
        var out = program
        apply(to: &out)
        return out
    }
}

/// The kernel-local rewrites (`KernelRewrite`), named so a kernel's facts can say which found
/// nothing in it.
enum LocalRewrite: Int {
    case forwarding, deadCarried, deadCode, simplify, commonSubexpressions, hoist, scaleMotion, linearity
    case distribution, momentExpansion, loopFusion, streaming, maskSkipping

    /// The rewrite as a member of `LocalRewrites`.
    var flag: LocalRewrites { LocalRewrites(rawValue: 1 << rawValue) }
}

/// A set of kernel-local rewrites.
struct LocalRewrites: OptionSet {
    let rawValue: UInt32
}

/// Helpers for rules that rewrite one kernel at a time.
///
/// The rewrites they take are kernel-local: what they do depends only on the kernel and the
/// program's tensors (never on other kernels or the plan's decisions), so the kernel's facts
/// remember each that found nothing (by its name `local`) and it is skipped when the kernel
/// comes back unchanged.
enum KernelRewrite {
    /// Like `first`, for rewrites that replace a kernel's body.
    static func body(
        _ program: Program, _ plan: FusionPlan, local name: LocalRewrite,
        _ rewrite: (Kernel, Program) -> (body: [Instruction], detail: String)?
    ) -> RuleApplication? {
        first(program, plan, local: name) { kernel, program in
            guard let (body, detail) = rewrite(kernel, program) else { return nil }
            var out = kernel
            out.body = body
            return (out, detail)
        }
    }

    /// Tries `rewrite` on each kernel in order; the first kernel it changes is replaced (and
    /// renumbered) and the application returned.
    static func first(
        _ program: Program, _ plan: FusionPlan, local name: LocalRewrite,
        _ rewrite: (Kernel, Program) -> (kernel: Kernel, detail: String)?
    ) -> RuleApplication? {
        for index in plan.candidates(program) {
            let kernel = program.kernels[index]
            let facts = plan.facts(of: kernel, in: program)
            guard !facts.unmatched.contains(name.flag) else {
                plan.localRewritesSkipped += 1
                continue
            }
            guard let (rewritten, detail) = rewrite(kernel, program) else {
                facts.unmatched.insert(name.flag)
                continue
            }
            return RuleApplication(
                change: .replace(index, rewritten.renumbered()), place: kernel.name, detail: detail)
        }
        return nil
    }
}
