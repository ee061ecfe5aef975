import BlockIR

/// How a dialect stores each element type in global memory and converts it to and from the
/// f32 its blocks compute in.
///
/// Loads convert a tensor's elements to f32 as they enter a block; stores convert back
/// (rounding to nearest even for f16 and bf16, truncating toward zero and saturating for i32,
/// non-zero for bool), exactly as the interpreter does. Entry points take every tensor in its
/// ABI type (f16 and bf16 as `uint16_t` bit patterns), so a C header needs no compiler-specific
/// half-precision type.
public struct ElementSpellings: Hashable, Sendable {
    /// The element type of kernel parameters and storage pointers (`_Float16`, `__nv_bfloat16`).
    public var storage: [ElementType: String]
    /// The element type of the entry point's parameters (`uint16_t` for f16 and bf16).
    public var abi: [ElementType: String]
    /// Converts a stored element `$0` to f32.
    public var load: [ElementType: String]
    /// Converts an f32 `$0` to the stored type.
    public var store: [ElementType: String]
    /// Headers the source includes when the program has tensors of a type.
    public var includes: [ElementType: [String]]
    /// Helper functions the source defines when the program has tensors of a type (after the
    /// runtime; `%QUALIFIER%` is the dialect's helper qualifier).
    public var helpers: [ElementType: String]

    /// Makes element spellings.
    public init(
        storage: [ElementType: String], abi: [ElementType: String], load: [ElementType: String],
        store: [ElementType: String], includes: [ElementType: [String]], helpers: [ElementType: String]
    ) {
        self.storage = storage
        self.abi = abi
        self.load = load
        self.store = store
        self.includes = includes
        self.helpers = helpers
    }

    static let abiTypes: [ElementType: String] = [
        .f32: "float", .f16: "uint16_t", .bf16: "uint16_t", .i32: "int32_t", .bool: "uint8_t",
    ]

    static let i32Helper = """
        %QUALIFIER% int32_t blk_f32_to_i32(float x) {
            if (x != x) return 0;
            if (x >= 2147483647.0f) return 2147483647;
            if (x <= -2147483648.0f) return (int32_t)(-2147483647 - 1);
            return (int32_t)x;
        }
        """

    /// C: `_Float16` (GCC and Clang on x86-64 and AArch64) and bf16 as `uint16_t` patterns.
    public static let c = ElementSpellings(
        storage: [.f32: "float", .f16: "_Float16", .bf16: "uint16_t", .i32: "int32_t", .bool: "uint8_t"],
        abi: abiTypes,
        load: [.f32: "$0", .f16: "(float)$0", .bf16: "blk_bf16_to_f32($0)", .i32: "(float)$0", .bool: "(float)$0"],
        store: [
            .f32: "$0", .f16: "(_Float16)($0)", .bf16: "blk_f32_to_bf16($0)", .i32: "blk_f32_to_i32($0)",
            .bool: "(uint8_t)(($0) != 0.0f)",
        ],
        includes: [:],
        helpers: [
            .bf16: """
            %QUALIFIER% float blk_bf16_to_f32(uint16_t h) {
                uint32_t u = (uint32_t)h << 16;
                float x;
                memcpy(&x, &u, 4);
                return x;
            }
            %QUALIFIER% uint16_t blk_f32_to_bf16(float x) {
                uint32_t u;
                memcpy(&u, &x, 4);
                if (x != x) return (uint16_t)((u >> 16) | 0x40);
                return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
            }
            """,
            .i32: i32Helper,
        ])

    /// CUDA: f16 and bf16 stored as `uint16_t` bit patterns and converted with PTX `cvt` (f16)
    /// and integer arithmetic (bf16), so the source needs no toolkit header beyond the runtime. Under
    /// `BLOCKC_CUDA_EMULATOR` (defined by `CUDAEmulator.header`) f16 converts in C++ instead, since
    /// inline PTX cannot run on a CPU.
    public static let cuda = ElementSpellings(
        storage: abiTypes, abi: abiTypes,
        load: [
            .f32: "$0", .f16: "blk_f16_to_f32($0)", .bf16: "blk_bf16_to_f32($0)", .i32: "(float)$0",
            .bool: "(float)$0",
        ],
        store: [
            .f32: "$0", .f16: "blk_f32_to_f16($0)", .bf16: "blk_f32_to_bf16($0)", .i32: "blk_f32_to_i32($0)",
            .bool: "(uint8_t)(($0) != 0.0f)",
        ],
        includes: [:],
        helpers: [
            .f16: """
            %QUALIFIER% float blk_f16_to_f32(uint16_t h) {
            #ifdef BLOCKC_CUDA_EMULATOR
                return blk_emu::f16_to_f32(h);
            #else
                float x;
                asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
                return x;
            #endif
            }
            %QUALIFIER% uint16_t blk_f32_to_f16(float x) {
            #ifdef BLOCKC_CUDA_EMULATOR
                return blk_emu::f32_to_f16(x);
            #else
                uint16_t h;
                asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
                return h;
            #endif
            }
            """,
            .bf16: """
            %QUALIFIER% float blk_bf16_to_f32(uint16_t h) { return __uint_as_float((unsigned int)h << 16); }
            %QUALIFIER% uint16_t blk_f32_to_bf16(float x) {
                unsigned int u = __float_as_uint(x);
                if (x != x) return (uint16_t)((u >> 16) | 0x40);
                return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
            }
            """,
            .i32: i32Helper,
        ])
}
