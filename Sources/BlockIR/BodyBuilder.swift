/// Appends instructions to a kernel body, numbering values in order of definition.
///
/// Lowering and the fusion rules build bodies through it, so printed programs number values
/// `%0, %1, …` in program order (a loop's results before its carried values and its body).
public struct BodyBuilder: Sendable {
    /// The next value number to hand out.
    public var nextNumber: Int
    /// The instructions built so far.
    public var instructions: [Instruction] = []

    /// Starts an empty body whose values are numbered from `firstNumber`.
    public init(firstNumber: Int = 0) { self.nextNumber = firstNumber }

    /// Hands out a fresh value ID.
    public mutating func freshID() -> ValueID {
        defer { nextNumber += 1 }
        return ValueID(nextNumber)
    }

    /// Appends an instruction with one result of `type` and returns the result.
    @discardableResult
    public mutating func emit(_ op: Op, _ type: BlockType) -> ValueID {
        let id = freshID()
        instructions.append(Instruction([Value(id, type)], op))
        return id
    }

    /// Appends an instruction without results (`store`, `yield`).
    public mutating func emit(_ op: Op) {
        instructions.append(Instruction([], op))
    }

    /// Appends a loop `for variable in lower ..< upper` carrying values that start as `initial`
    /// (of `types`). `body` receives the carried values and returns the values to yield; the
    /// loop's results are returned.
    public mutating func loop(
        _ variable: IndexVar, from lower: IndexExpr, to upper: IndexExpr, carrying initial: [ValueID],
        types: [BlockType], body: (inout BodyBuilder, [ValueID]) -> [ValueID]
    ) -> [ValueID] {
        let results = types.map { Value(freshID(), $0) }
        let carried = types.map { Value(freshID(), $0) }
        var inner = BodyBuilder(firstNumber: nextNumber)
        let yielded = body(&inner, carried.map(\.id))
        inner.emit(.yield(yielded))
        nextNumber = inner.nextNumber
        let loop = Loop(
            variable: variable, lower: lower, upper: upper, initial: initial, carried: carried, body: inner.instructions
        )
        instructions.append(Instruction(results, .loop(loop)))
        return results.map(\.id)
    }
}
