/// What went wrong reading or importing an ONNX model: the message says what was found, where
/// (a byte offset, or a node's op type, name and opset) and what to change.
public struct ONNXError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong and what to change.
    public var message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
