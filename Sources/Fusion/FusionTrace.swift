import BlockIR

/// One step of a fusion run: which rule applied where, and what changed.
public struct TraceEntry: Hashable, Sendable, CustomStringConvertible {
    /// The step number, from 1.
    public var step: Int
    /// The rule's catalogue identifier (`R1`, …).
    public var ruleID: String
    /// The rule's name.
    public var rule: String
    /// The kernel rewritten.
    public var place: String
    /// What changed.
    public var detail: String
    /// The program's kernel count before → after.
    public var summary: String

    /// `step. R1 inline-producer @ k7_matmul_O: detail [summary]`
    public var description: String {
        "\(step). \(ruleID) \(rule) @ \(place): \(detail) [\(summary)]"
    }
}

/// The outcome of fusing a program.
public struct FusionResult: Sendable {
    /// The fused program.
    public var program: Program
    /// Every rule application, in order.
    public var trace: [TraceEntry]
    /// The plan's decisions, in order.
    public var decisions: [String]
    /// Whether the driver stopped at its step cap before reaching a fixed point.
    public var hitStepCap: Bool
    /// The candidates the plan's decisions formed: for each kernel of the fused program, the
    /// kernels of the input program whose computation it now performs (itself included).
    public var candidates: [(kernel: String, from: [String])]
    /// How much work the driver did.
    public var statistics = FusionStatistics()
}

/// Counts of the work a fusion run did, to check that it grows with the number of steps and not
/// with the program's size (Tests/FusionTests/FusionScalingTests.swift).
public struct FusionStatistics: Hashable, Sendable {
    /// Kernels the driver chose to look at (each tried against the rules).
    public var examinations = 0
    /// Rule applications.
    public var steps = 0
    /// Kernels copied when a step of the fixed-point loop could not change the program in place (a
    /// whole program built by a rule, or a kernel list whose storage was shared).
    public var kernelsCopied = 0
    /// Neighbours of rewritten kernels marked to be looked at again.
    public var neighboursVisited = 0
    /// Kernels R1 looked at while searching for a load's producer.
    public var producersVisited = 0
    /// Kernel-local rewrites not tried again on a kernel they had found nothing in (it was looked
    /// at again unchanged, because a neighbour changed).
    public var localRewritesSkipped = 0
    /// Re-blockings refused because the wider block does not fit the target's local tier (R11's "keep … blocked"):
    /// a GPU plan then tries smaller row blocks (`Fusion.fuseChoosingRowBlock`).
    public var capacityRefusals = 0

    /// Makes empty counts.
    public init() {}
}
