import BlockIR

/// The schedule stage: from a fused program and a target to a `ProgramSchedule`.
///
/// Policy lives here, legality in the rules: the stage first settles block sizes (row
/// coarsening), then computes every kernel's storage, buffers, parallel axes, micro-kernels and
/// GPU launch once.
public enum Scheduler {
    /// Schedules a fused program for a target.
    public static func schedule(_ program: Program, target: TargetDescription) -> ProgramSchedule {
        let (coarsened, decisions) = RowCoarsening.apply(program, target: target)
        return ProgramSchedule(coarsened, target: target, decisions: decisions)
    }
}
