/// The element type of a tensor in global memory: how each element is stored.
///
/// Blocks in the `local` and `reg` tiers always compute in fp32 (`f32[…] @local`): a load
/// converts a tensor's elements to f32, a store converts back to the tensor's type. Storage
/// conversions are exact except from f32 to a narrower type, which rounds to nearest even (f16,
/// bf16), truncates toward zero and saturates (i32), or tests for non-zero (bool: 1 or 0).
public enum ElementType: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE binary32.
    case f32
    /// IEEE binary16.
    case f16
    /// bfloat16: the upper 16 bits of a binary32.
    case bf16
    /// 32-bit two's-complement integer.
    case i32
    /// A truth value, one byte: 0 or 1.
    case bool

    /// Bytes of one element in global memory.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .bool: return 1
        }
    }

    /// Whether arithmetic is defined on the type (every type but `bool`).
    public var isArithmetic: Bool { self != .bool }

    /// Whether the type is a floating-point type.
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// The NumPy dtype of `.npy` files holding the type: `<f4`, `<f2`, `<i4`, `|b1`, and for
    /// bf16, which NumPy lacks, `<u2` holding each element's bit pattern.
    public var numpyDescr: String {
        switch self {
        case .f32: return "<f4"
        case .f16: return "<f2"
        case .bf16: return "<u2"
        case .i32: return "<i4"
        case .bool: return "|b1"
        }
    }

    /// The name in both text forms (`bf16`).
    public var description: String { rawValue }

    /// The value an f32 becomes when stored as this type (and read back as f32).
    public func stored(_ x: Float) -> Float {
        switch self {
        case .f32: return x
        case .f16: return Float(Float16(x))
        case .bf16: return Float(bitPattern: UInt32(ElementType.bf16Bits(x)) << 16)
        case .i32:
            if x.isNaN { return 0 }
            let t = x.rounded(.towardZero)
            if t >= 2_147_483_647 { return 2_147_483_647 }
            if t <= -2_147_483_648 { return -2_147_483_648 }
            return t
        case .bool: return x != 0 ? 1 : 0
        }
    }

    /// The bfloat16 bit pattern of an f32, rounded to nearest even (NaN stays a quiet NaN).
    public static func bf16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }
}
