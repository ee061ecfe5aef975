import BlockIR

/// A dense tensor in row-major (C) order: the interpreters' inputs and outputs and what `.npy`
/// files hold. Elements are held as f32 values of the element type (an f16, bf16, i32 or bool
/// array holds only values that type can store; i32 values are exact up to 2^24 in magnitude).
public struct NDArray: Hashable, Sendable {
    /// The shape; `[]` is a scalar (one element).
    public var shape: [Int]
    /// The elements in row-major order; `data.count` is the product of `shape`.
    public var data: [Float]
    /// The element type (how `.npy` files store it).
    public var elementType: ElementType

    /// Makes an array from its elements in row-major order. `data.count` must equal the product
    /// of `shape` (a programming error otherwise).
    public init(shape: [Int], data: [Float], elementType: ElementType = .f32) {
        precondition(
            shape.allSatisfy { $0 >= 0 } && NDArray.elementCount(of: shape) == data.count,
            "NDArray: \(data.count) elements do not fill shape \(shape)")
        self.shape = shape
        self.data = data
        self.elementType = elementType
    }

    /// Makes an array whose every element is `value`.
    public init(shape: [Int], repeating value: Float) {
        precondition(shape.allSatisfy { $0 >= 0 }, "NDArray: negative dimension in \(shape)")
        self.shape = shape
        self.data = Array(repeating: value, count: NDArray.elementCount(of: shape))
        self.elementType = .f32
    }

    /// A rank-0 array holding one value.
    public static func scalar(_ value: Float) -> NDArray { NDArray(shape: [], data: [value]) }

    /// The number of elements (1 for a scalar).
    public var elementCount: Int { data.count }

    /// The number of axes.
    public var rank: Int { shape.count }

    /// The row-major strides in elements: the last axis has stride 1.
    public var strides: [Int] { NDArray.strides(of: shape) }

    /// The element at a multi-index (one index per axis, each in range; a programming error
    /// otherwise).
    public subscript(_ index: [Int]) -> Float {
        get { data[offset(of: index)] }
        set { data[offset(of: index)] = newValue }
    }

    private func offset(of index: [Int]) -> Int {
        precondition(index.count == shape.count, "NDArray: \(index.count) indices for rank \(shape.count)")
        var offset = 0
        for (axis, i) in index.enumerated() {
            precondition(i >= 0 && i < shape[axis], "NDArray: index \(i) out of range for axis \(axis)")
            offset = offset * shape[axis] + i
        }
        return offset
    }

    /// The number of elements of a shape (the product of its dimensions; 1 for `[]`).
    public static func elementCount(of shape: [Int]) -> Int { shape.reduce(1, &*) }

    /// The row-major strides in elements of a shape.
    public static func strides(of shape: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            stride = stride &* shape[axis]
        }
        return strides
    }
}
