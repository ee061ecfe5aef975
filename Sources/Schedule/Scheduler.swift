import BlockIR

/// The schedule stage: from a fused program and a target to a `ProgramSchedule`.
///
/// Policy lives here, legality in the rules: the stage first settles block sizes (row
/// coarsening), splits the loops a CPU computes once per run of instances (`InvariantFission`,
/// for `GridHoisting`), folds a product's scale into its loop-invariant operand (`ScaleFolding`),
/// then computes every kernel's storage, buffers, parallel axes, micro-kernels and
/// GPU launch once.
public enum Scheduler {
    /// Schedules a fused program for a target.
    public static func schedule(_ program: Program, target: TargetDescription) -> ProgramSchedule {
        let (coarsened, decisions) = RowCoarsening.apply(program, target: target)
        let (split, splits) = InvariantFission.apply(coarsened, target: target)
        let (folded, folds) = ScaleFolding.apply(split, target: target)
        return ProgramSchedule(folded, target: target, decisions: decisions + splits + folds)
    }

    /// Schedules a program at the block sizes it has (no coarsening): what the emitters' tests
    /// compile, so their programs are the ones the interpreter ran, loops split for hoisting aside.
    public static func scheduleKeepingBlocks(_ program: Program, target: TargetDescription) -> ProgramSchedule {
        let (split, splits) = InvariantFission.apply(program, target: target)
        let (folded, folds) = ScaleFolding.apply(split, target: target)
        return ProgramSchedule(folded, target: target, decisions: splits + folds)
    }
}
