import BlockIR

/// The schedule stage's result: the program as it will run (block sizes final) and one
/// `KernelSchedule` per kernel, computed once from the program and the target.
///
/// The emitters render a program with its schedule and a dialect; they decide nothing the
/// schedule holds.
public struct ProgramSchedule: Sendable {
    /// The program with its final block sizes.
    public let program: Program
    /// The target it is scheduled for.
    public let target: TargetDescription
    /// One schedule per kernel, in program order.
    package let kernels: [KernelSchedule]
    /// The policy decisions taken (one line each, in order), for `explain` and the printer.
    public let decisions: [String]

    /// Schedules every kernel of `program` for `target`, as it is (no change of block sizes).
    public init(_ program: Program, target: TargetDescription) {
        self.init(program, target: target, decisions: [])
    }

    init(_ program: Program, target: TargetDescription, decisions: [String]) {
        self.program = program
        self.target = target
        self.decisions = decisions
        kernels = program.kernels.indices.map { KernelSchedule(program: program, index: $0, target: target) }
    }

    /// The bytes of local blocks one instance of each kernel allocates, in program order.
    public var localBytes: [Int] { kernels.map(\.buffers.totalBytes) }
}
