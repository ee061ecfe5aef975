import BlockIR
import Foundation

/// The language a C-family emitter writes: spellings, qualifiers, pragmas and math functions.
///
/// The emitter's walk over a block program is language-neutral; everything that differs
/// between C/OpenMP and CUDA (how a kernel and a pointer are declared, how the grid becomes
/// parallel work, which functions compute `exp` or `max`) is data in this value. Templates use
/// `$0`, `$1` for operands and `%NAME%` for named holes.
public struct Dialect: Hashable, Sendable {
    /// A short name (`c`).
    public var name: String
    /// The extension of the generated source file (`c`).
    public var sourceExtension: String
    /// The extension of the generated header (`h`).
    public var headerExtension: String
    /// System headers the source includes, in order.
    public var sourceIncludes: [String]
    /// System headers the header includes, in order.
    public var headerIncludes: [String]
    /// Declares a program's entry point with the C ABI (`void`).
    public var entryQualifier: String
    /// Declares one kernel's host-side function (`static void`).
    public var kernelQualifier: String
    /// Declares a runtime helper (`static inline`).
    public var helperQualifier: String
    /// The no-alias pointer qualifier (`restrict`).
    public var restrictQualifier: String
    /// The integer type of index arithmetic (`long`).
    public var indexType: String
    /// The suffix that aligns a local array (`__attribute__((aligned(%BYTES%)))`).
    public var alignedArraySuffix: String
    /// The alignment of local blocks, in bytes.
    public var alignmentBytes: Int
    /// fp32 lanes of one vector register.
    public var vectorWidth: Int
    /// The most bytes of local blocks one kernel instance keeps on the stack; more are allocated
    /// once per thread.
    public var stackLimitBytes: Int
    /// Opens a parallel region whose threads share the grid (`#pragma omp parallel`).
    public var parallelRegion: String
    /// Distributes the grid loops over the region's threads:
    /// `#pragma omp for collapse(%COLLAPSE%) schedule(%SCHEDULE%)`.
    public var parallelFor: String
    /// The schedule of grids with balanced instances (`static`).
    public var staticSchedule: String
    /// The schedule of grids whose instances do different amounts of work (`dynamic, 1`).
    public var dynamicSchedule: String
    /// Asks for a vectorised inner loop (`#pragma omp simd`).
    public var simdLoop: String
    /// Allocates `%BYTES%` bytes of aligned scratch memory (an expression of type `float *`).
    public var allocateScratch: String
    /// Frees scratch memory (`free(%PTR%)`).
    public var free: String
    /// How each elementwise function of one operand is spelled (`blk_expf($0)`).
    public var unaryTemplates: [UnaryOp: String]
    /// How each elementwise function of two operands is spelled (`($0 + $1)`).
    public var binaryTemplates: [BinaryOp: String]
    /// The combining step of each reduction (`($0 + $1)`, `blk_maxf($0, $1)`).
    public var reduceTemplates: [ReduceOp: String]
    /// Words that cannot name a variable.
    public var keywords: Set<String>
    /// The runtime helpers every generated source starts with (math, reductions, the dot
    /// micro-kernel).
    public var runtime: String
    /// The GPU spellings (threads, barriers, shared memory); `nil` for a CPU dialect, whose
    /// grid is a parallel loop nest and whose blocks are thread-private.
    public var gpu: GPUSpellings?
    /// How each element type is stored and converted.
    public var elements: ElementSpellings = .c

    /// Makes a dialect.
    public init(
        name: String, sourceExtension: String, headerExtension: String, sourceIncludes: [String],
        headerIncludes: [String], entryQualifier: String, kernelQualifier: String, helperQualifier: String,
        restrictQualifier: String, indexType: String, alignedArraySuffix: String, alignmentBytes: Int,
        vectorWidth: Int, stackLimitBytes: Int, parallelRegion: String, parallelFor: String,
        staticSchedule: String, dynamicSchedule: String, simdLoop: String,
        allocateScratch: String, free: String, unaryTemplates: [UnaryOp: String],
        binaryTemplates: [BinaryOp: String], reduceTemplates: [ReduceOp: String], keywords: Set<String>,
        runtime: String, gpu: GPUSpellings? = nil
    ) {
        self.name = name
        self.sourceExtension = sourceExtension
        self.headerExtension = headerExtension
        self.sourceIncludes = sourceIncludes
        self.headerIncludes = headerIncludes
        self.entryQualifier = entryQualifier
        self.kernelQualifier = kernelQualifier
        self.helperQualifier = helperQualifier
        self.restrictQualifier = restrictQualifier
        self.indexType = indexType
        self.alignedArraySuffix = alignedArraySuffix
        self.alignmentBytes = alignmentBytes
        self.vectorWidth = vectorWidth
        self.stackLimitBytes = stackLimitBytes
        self.parallelRegion = parallelRegion
        self.parallelFor = parallelFor
        self.staticSchedule = staticSchedule
        self.dynamicSchedule = dynamicSchedule
        self.simdLoop = simdLoop
        self.allocateScratch = allocateScratch
        self.free = free
        self.unaryTemplates = unaryTemplates
        self.binaryTemplates = binaryTemplates
        self.reduceTemplates = reduceTemplates
        self.keywords = keywords
        self.runtime = runtime
        self.gpu = gpu
    }

    /// C99 with OpenMP and GNU attributes, for `gcc -O3 -march=native -fopenmp`.
    public static let c = Dialect(
        name: "c", sourceExtension: "c", headerExtension: "h",
        sourceIncludes: ["math.h", "stdint.h", "stdlib.h", "string.h"], headerIncludes: [],
        entryQualifier: "void", kernelQualifier: "static void", helperQualifier: "static inline",
        restrictQualifier: "restrict", indexType: "long",
        alignedArraySuffix: "__attribute__((aligned(%BYTES%)))", alignmentBytes: 64, vectorWidth: 16,
        stackLimitBytes: 256 * 1024, parallelRegion: "#pragma omp parallel",
        parallelFor: "#pragma omp for collapse(%COLLAPSE%) schedule(%SCHEDULE%)", staticSchedule: "static",
        dynamicSchedule: "dynamic, 1", simdLoop: "#pragma omp simd",
        allocateScratch: "blk_alloc(%BYTES%)", free: "free(%PTR%)",
        unaryTemplates: [
            .neg: "(-$0)", .exp: "blk_expf($0)", .log: "blk_logf($0)", .sqrt: "sqrtf($0)",
            .rsqrt: "(1.0f / sqrtf($0))", .recip: "(1.0f / $0)", .tanh: "blk_tanhf($0)",
            .sigmoid: "blk_sigmoidf($0)", .silu: "blk_siluf($0)", .gelu: "blk_geluf($0)", .abs: "fabsf($0)",
            .square: "($0 * $0)", .sin: "blk_sinf($0)", .cos: "blk_cosf($0)", .log1p: "blk_log1pf($0)",
            .erf: "blk_erff($0)",
            // log1p(e^(−|x|)) + max(x, 0): exact 0 at −inf, x at +inf, NaN stays NaN.
            .softplus: "(blk_log1pf(blk_expf(-fabsf($0))) + blk_maxf($0, 0.0f))", .one: "1.0f",
        ],
        binaryTemplates: [
            .add: "($0 + $1)", .sub: "($0 - $1)", .mul: "($0 * $1)", .div: "($0 / $1)",
            .max: "blk_maxf($0, $1)", .min: "blk_minf($0, $1)", .pow: "powf($0, $1)",
            // Comparisons as IEEE 754 (NaN compares false except under !=): 1 or 0.
            .lt: "(($0 < $1) ? 1.0f : 0.0f)", .le: "(($0 <= $1) ? 1.0f : 0.0f)",
            .gt: "(($0 > $1) ? 1.0f : 0.0f)", .ge: "(($0 >= $1) ? 1.0f : 0.0f)",
            .eq: "(($0 == $1) ? 1.0f : 0.0f)", .ne: "(($0 != $1) ? 1.0f : 0.0f)",
            .logicalAnd: "((($0) != 0.0f && ($1) != 0.0f) ? 1.0f : 0.0f)",
            .logicalOr: "((($0) != 0.0f || ($1) != 0.0f) ? 1.0f : 0.0f)",
        ],
        reduceTemplates: [.sum: "($0 + $1)", .max: "blk_maxf($0, $1)"],
        keywords: [
            "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
            "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
            "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
            "volatile", "while", "main", "free", "malloc", "calloc", "exit", "abs", "exp", "log", "sqrt",
            "tanh", "pow", "fabsf", "expf", "logf", "sqrtf", "powf", "tanhf", "sin", "cos", "sinf", "cosf", "log1p",
            "log1pf", "erf", "erff", "NULL", "INFINITY", "NAN",
        ],
        runtime: [CRuntime.basics, CRuntime.math, CRuntime.reductions, CRuntime.dot, CRuntime.dotBF16].joined(
            separator: "\n") + "\n")

    /// The storage type of a tensor's elements (`float`, `uint16_t`).
    public func storageType(_ type: ElementType) -> String { elements.storage[type] ?? "float" }

    /// The entry point's parameter type of a tensor's elements.
    public func abiType(_ type: ElementType) -> String { elements.abi[type] ?? "float" }

    /// The f32 value of a stored element expression.
    public func loaded(_ type: ElementType, _ expression: String) -> String {
        apply(elements.load[type] ?? "$0", [expression])
    }

    /// The stored form of an f32 expression.
    public func stored(_ type: ElementType, _ expression: String) -> String {
        apply(elements.store[type] ?? "$0", [expression])
    }

    /// Instantiates a template: `$0`, `$1` become the operands.
    public func apply(_ template: String, _ operands: [String]) -> String {
        var out = template
        for (k, operand) in operands.enumerated().reversed() {
            out = out.replacingOccurrences(of: "$\(k)", with: operand)
        }
        return out
    }

    /// Fills the named holes `%NAME%` of a template.
    public func fill(_ template: String, _ holes: [(String, String)]) -> String {
        var out = template
        for (name, value) in holes { out = out.replacingOccurrences(of: "%\(name)%", with: value) }
        return out
    }
}
