import BlockIR

/// The reference semantics of the block level: runs a block program on dense fp32 arrays.
///
/// Global memory holds one buffer per storage tensor (a view reads and writes its base's buffer
/// through its own shape); buffers other than inputs start filled with NaN, so reading memory
/// no kernel wrote shows up. Kernels run in order, grid instances in row-major order of their
/// indices, loops from their lower to their upper bound (none when upper ≤ lower) with carried
/// values. Every block carries a static shape and a run-time extent per axis: a slice `s +: n`
/// of an axis of size `D` is valid for `clamp(D − s, 0, n)` elements; ops ignore elements past
/// the extent, a store writes only valid elements inside the tensor, and an out-of-range point
/// index or a negative slice start is a `Diagnostic` naming the kernel instance and instruction.
public enum BlockInterpreter {
    /// Runs `program` on `inputs` (by tensor name) and returns every output-role tensor by name.
    ///
    /// A missing input or one of the wrong shape is a `Diagnostic` naming the input and the
    /// expected shape; arrays for names that are not inputs are ignored. `progress`, when given,
    /// is called before each kernel with its number, the kernel count and its name.
    public static func run(
        _ program: Program, inputs: [String: NDArray], progress: ((Int, Int, String) -> Void)? = nil
    ) throws(Diagnostic) -> [String: NDArray] {
        try runCountingIterations(program, inputs: inputs, progress: progress).outputs
    }

    /// Runs `program` as `run` does and also returns, per kernel name, the loop iterations its
    /// instances ran, ran without the element test, and skipped by a guard (`LoopIterations`):
    /// the blocks a data-dependent loop visited.
    public static func runCountingIterations(
        _ program: Program, inputs: [String: NDArray], progress: ((Int, Int, String) -> Void)? = nil
    ) throws(Diagnostic) -> (outputs: [String: NDArray], iterations: [String: LoopIterations]) {
        var machine = try BlockMachine(program: program, computesData: true)
        for id in program.inputs {
            let tensor = program[id]
            guard let given = inputs[tensor.name] else {
                throw Diagnostic(
                    "missing input '\(tensor.name)': expected an \(tensor.elementType) array of shape \(tensor.shape)")
            }
            guard given.shape == tensor.shape, given.data.count == tensor.elementCount else {
                throw Diagnostic(
                    "input '\(tensor.name)' has shape \(given.shape); the program expects shape \(tensor.shape)")
            }
            if let n = tensor.offsetsInto,
                let problem = SegmentOffsets.problem(
                    given.data, length: n, maxLength: tensor.segmentMaxLength, name: tensor.name)
            {
                throw Diagnostic(problem)
            }
            let type = tensor.elementType
            machine.memory[machine.storage[id.index]] = type == .f32 ? given.data : given.data.map(type.stored)
        }
        for (k, kernel) in program.kernels.enumerated() {
            progress?(k, program.kernels.count, kernel.name)
            try machine.run(try KernelCompiler.compile(kernel, in: program))
        }
        var outputs: [String: NDArray] = [:]
        for id in program.outputs {
            let tensor = program[id]
            outputs[tensor.name] = NDArray(
                shape: tensor.shape, data: machine.memory[machine.storage[id.index]], elementType: tensor.elementType)
        }
        return (outputs, machine.iterations)
    }
}
