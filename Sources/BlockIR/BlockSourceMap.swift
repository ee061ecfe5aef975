/// An instruction of a program: its kernel's index and the index path from the kernel's body
/// through the bodies of the loops around it (`[2, 0]`: the first instruction of the loop that
/// is the kernel's third instruction).
public struct InstructionPath: Hashable, Sendable {
    /// The kernel's index in `Program.kernels`.
    public var kernel: Int
    /// Indices into the kernel's body and the nested loop bodies.
    public var indices: [Int]

    /// Makes a path.
    public init(kernel: Int, indices: [Int]) {
        self.kernel = kernel
        self.indices = indices
    }
}

/// Where the parts of a program parsed from `.block` text are written: tensor declarations,
/// kernels and instructions. The verifier uses it to give its errors a `file:line:col`.
public struct BlockSourceMap: Hashable, Sendable {
    /// Per tensor (by index): the location of its name in its declaration.
    public var tensors: [SourceLocation] = []
    /// Per kernel (by index): the location of its `kernel` keyword.
    public var kernels: [SourceLocation] = []
    /// Per instruction: the location of its first token.
    public var instructions: [InstructionPath: SourceLocation] = [:]

    /// An empty map.
    public init() {}

    /// Where a tensor is declared.
    public func tensor(_ index: Int) -> SourceLocation? { tensors.indices.contains(index) ? tensors[index] : nil }

    /// Where a kernel starts.
    public func kernel(_ index: Int) -> SourceLocation? { kernels.indices.contains(index) ? kernels[index] : nil }

    /// Where an instruction is.
    public func instruction(_ path: InstructionPath) -> SourceLocation? { instructions[path] }
}
