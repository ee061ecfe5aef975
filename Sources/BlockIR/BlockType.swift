/// The type of a block value: an fp32 block of a static shape in a tier.
///
/// The shape is the block's capacity; at run time a block at the edge of a tensor may hold fewer
/// valid elements along each axis (its *extent*). Every op ignores the elements past the extent.
public struct BlockType: Hashable, Sendable, CustomStringConvertible {
    /// The static shape; `[]` is a scalar. Blocks have rank 0, 1 or 2.
    public var shape: [Int]
    /// The tier the value lives in.
    public var tier: Tier

    /// Makes a block type.
    public init(_ shape: [Int], _ tier: Tier) {
        self.shape = shape
        self.tier = tier
    }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
    /// The size in bytes (fp32).
    public var byteCount: Int { elementCount * 4 }
    /// The rank.
    public var rank: Int { shape.count }

    /// Printed form, e.g. `f32[64,64] @local`.
    public var description: String {
        "f32[" + shape.map(String.init).joined(separator: ",") + "] @" + tier.rawValue
    }
}
