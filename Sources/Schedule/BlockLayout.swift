import BlockIR

/// What provides the memory of a block value in generated code.
package enum StorageBase: Hashable, Sendable {
    /// A scalar C variable `sN` of value `N`: a rank-0 value, or a splat (a fill, a broadcast
    /// scalar) read with zero strides.
    case scalar(ValueID)
    /// The local buffer of value `N` (a buffer owner; views of it read it with other strides).
    case buffer(ValueID)
    /// Global memory: the pointer `vN` that load `N` computed into its tensor.
    case global(ValueID)
}

/// How a block value's elements are addressed: element `(r, c)` is at
/// `base[r·strides[0] + c·strides[1]]`; `extents` holds the statically known extents.
package struct BlockLayout: Hashable, Sendable {
    /// The static shape.
    package var shape: [Int]
    /// Where the elements are.
    package var base: StorageBase
    /// The element stride of each axis (0 repeats an element).
    package var strides: [Int]
    /// Per axis: the extent when it is the same for every kernel instance, else `nil`.
    package var staticExtents: [Int?]

    /// The row-major strides of a buffer of a shape.
    package static func rowMajor(_ shape: [Int]) -> [Int] {
        var s = Array(repeating: 1, count: shape.count)
        for k in stride(from: shape.count - 2, through: 0, by: -1) { s[k] = s[k + 1] * shape[k + 1] }
        return s
    }

    /// Whether the value is the whole content of its own buffer, row-major.
    package var ownsRowMajorBuffer: Bool {
        guard case .buffer = base else { return false }
        return strides == Self.rowMajor(shape)
    }
}
