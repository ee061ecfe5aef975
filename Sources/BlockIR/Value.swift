/// The identity of an SSA value inside a kernel (a typed ID, printed `%N`).
public struct ValueID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The number; unique within a kernel.
    public var number: Int

    /// Makes an ID.
    public init(_ number: Int) { self.number = number }

    public var description: String { "%\(number)" }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.number < b.number }
}

/// A defined SSA value: its identity and its type.
public struct Value: Hashable, Sendable {
    /// The identity.
    public var id: ValueID
    /// The type.
    public var type: BlockType

    /// Makes a value.
    public init(_ id: ValueID, _ type: BlockType) {
        self.id = id
        self.type = type
    }
}

/// The identity of a global tensor of a program (an index into `Program.tensors`).
public struct TensorID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The index into `Program.tensors`.
    public var index: Int

    /// Makes an ID.
    public init(_ index: Int) { self.index = index }

    public var description: String { "T\(index)" }
    public static func < (a: TensorID, b: TensorID) -> Bool { a.index < b.index }
}
