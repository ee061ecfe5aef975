/// One problem the verifier found in a block program.
public struct VerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kernel the problem is in; `nil` for problems with the tensors or the kernel list.
    public var kernel: String?
    /// What is wrong.
    public var message: String
    /// Where in the `.block` text the problem is, when the program was verified with the source
    /// map its parser recorded (`BlockParser.parseWithSourceMap`).
    public var location: SourceLocation?

    /// Makes an error.
    public init(kernel: String?, message: String, location: SourceLocation? = nil) {
        self.kernel = kernel
        self.message = message
        self.location = location
    }

    /// `kernel NAME: message`, or just the message for program-level problems.
    public var description: String {
        guard let kernel else { return message }
        return "kernel \(kernel): \(message)"
    }
}

/// Checks that a block program is well formed: names, views, SSA and scoping, loop structure,
/// the typing rule of every op, tiers, trip counts, the register-tier capacity of the target, and
/// that every element of every output is written exactly once. (The local tier's capacity is
/// checked on the emitters' storage model: `LocalStorage.verify` in the Schedule module.)
///
/// Errors come in a deterministic order: tensors, kernel names, then every kernel in program order
/// (its grid, then its instructions in program order, then its trip counts and register capacity), then
/// the outputs' coverage (only when everything else holds). The verifier never traps, whatever
/// the program.
public enum Verifier {
    /// Returns every problem found; an empty array means the program is well formed for `target`.
    /// With the source map of the program's `.block` text, errors carry their `file:line:col`.
    public static func verify(
        _ program: Program, target: TargetDescription, sourceMap: BlockSourceMap? = nil
    ) -> [VerificationError] {
        var errors = checkTensors(program).map { tensor, message in
            VerificationError(kernel: nil, message: message, location: tensor.flatMap { sourceMap?.tensor($0) })
        }
        var kernelNames: Set<String> = []
        for (index, kernel) in program.kernels.enumerated() where !kernelNames.insert(kernel.name).inserted {
            errors.append(
                VerificationError(
                    kernel: nil, message: "kernel name '\(kernel.name)' is used twice; kernel names must be unique",
                    location: sourceMap?.kernel(index)))
        }
        for (index, kernel) in program.kernels.enumerated() {
            var checker = KernelChecker(program: program, kernel: kernel)
            checker.run()
            var problems = checker.errors
            if problems.isEmpty {
                problems += tripCountErrors(kernel)
            }
            if problems.isEmpty {
                if let registers = registerError(kernel, target: target) { problems.append((nil, registers)) }
            }
            errors += problems.map { path, message in
                VerificationError(
                    kernel: kernel.name, message: message,
                    location: sourceMap.flatMap { map in
                        path.flatMap { map.instruction(InstructionPath(kernel: index, indices: $0)) }
                            ?? map.kernel(index)
                    })
            }
        }
        if errors.isEmpty {
            errors += coverageErrors(program, sourceMap: sourceMap)
        }
        return errors
    }

    private static func checkTensors(_ program: Program) -> [(tensor: Int?, message: String)] {
        var errors: [(tensor: Int?, message: String)] = []
        var names: Set<String> = []
        for (index, tensor) in program.tensors.enumerated() {
            let name = tensor.name
            if !names.insert(name).inserted {
                errors.append((index, "tensor name '\(name)' is declared twice; tensor names must be unique"))
            }
            if tensor.shape.contains(where: { $0 <= 0 }) {
                errors.append(
                    (
                        index,
                        "tensor '\(name)' has shape \(tensor.shape); every dimension must be positive"
                    ))
            }
            guard let view = tensor.viewOf else { continue }
            guard view.index >= 0 && view.index < index else {
                errors.append(
                    (index, "tensor '\(name)' is a view of \(view), which is not a tensor declared before it"))
                continue
            }
            let target = program.tensors[view.index]
            if target.viewOf != nil {
                errors.append(
                    (
                        index,
                        "tensor '\(name)' is a view of '\(target.name)', which is itself a view; "
                            + "view the underlying tensor instead"
                    ))
            }
            if target.elementType != tensor.elementType {
                errors.append(
                    (
                        index,
                        "view '\(name)' is \(tensor.elementType) but '\(target.name)' is \(target.elementType); "
                            + "a view has its tensor's element type"
                    ))
            }
            if let window = tensor.window {
                if window.count != target.shape.count || tensor.shape.count != target.shape.count {
                    errors.append(
                        (
                            index,
                            "window view '\(name)' of rank \(tensor.shape.count) has \(window.count) offsets, but "
                                + "'\(target.name)' has rank \(target.shape.count); give one offset per axis of the "
                                + "viewed tensor, which must have the view's rank"
                        ))
                } else if let axis = target.shape.indices.first(where: {
                    window[$0] < 0 || window[$0] > target.shape[$0] - tensor.shape[$0]
                }) {
                    errors.append(
                        (
                            index,
                            "window view '\(name)' (shape \(tensor.shape) at \(window)) leaves '\(target.name)' "
                                + "(shape \(target.shape)) on axis \(axis); a window must lie inside the viewed tensor"
                        ))
                }
                continue
            }
            let count = safeElementCount(tensor.shape)
            let targetCount = safeElementCount(target.shape)
            if count != targetCount {
                errors.append(
                    (
                        index,
                        "view '\(name)' has \(count) elements but '\(target.name)' has \(targetCount); "
                            + "a view must have the same element count"
                    ))
            }
        }
        return errors
    }

    /// The product of a shape's sizes, saturating at `Int.max`.
    static func safeElementCount(_ shape: [Int]) -> Int {
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return Int.max }
            count = p
        }
        return count
    }

    /// A block's size in bytes, saturating at `Int.max`.
    public static func safeByteCount(_ type: BlockType) -> Int {
        let (bytes, overflow) = safeElementCount(type.shape).multipliedReportingOverflow(by: 4)
        return overflow ? Int.max : bytes
    }
}

/// Checks one kernel's grid and body.
private struct KernelChecker {
    let program: Program
    let kernel: Kernel
    /// Every value the kernel defines anywhere (to tell "used too early" from "never defined").
    let allDefined: Set<ValueID>

    /// The problems found, each with the index path of its instruction (`nil`: the kernel's grid).
    var errors: [(path: [Int]?, message: String)] = []
    /// The index path of the instruction being checked (empty while checking the grid).
    var path: [Int] = []
    /// The values visible at the current point, with their types.
    var visible: [ValueID: BlockType] = [:]
    /// The values defined so far.
    var defined: Set<ValueID> = []
    /// The index variables in scope, innermost last.
    var indexScope: [String] = []

    init(program: Program, kernel: Kernel) {
        self.program = program
        self.kernel = kernel
        self.allDefined = Set(kernel.valueTypes().keys)
    }

    mutating func run() {
        var seen: [String] = []
        for axis in kernel.grid {
            let name = axis.variable.name
            if seen.contains(name) {
                report("grid variable '\(name)' is declared twice; grid variables must be unique")
            }
            seen.append(name)
            if axis.extent <= 0 {
                report("grid axis '\(name)' has extent \(axis.extent); grid extents must be positive")
            }
        }
        indexScope = seen
        checkBody(kernel.body, carried: nil)
    }

    /// Records a problem at the current instruction.
    mutating func report(_ message: String) {
        errors.append((path.isEmpty ? nil : path, message))
    }

    /// Checks a body; `carried` is the enclosing loop's carried values (nil at kernel level).
    mutating func checkBody(_ body: [Instruction], carried: [Value]?) {
        for (k, inst) in body.enumerated() {
            path.append(k)
            check(inst, carried: carried, isLast: k == body.count - 1)
            path.removeLast()
        }
        if carried != nil {
            let last = body.last.map { inst -> Bool in
                if case .yield = inst.op { return true }
                return false
            }
            if last != true {
                report("a loop body does not end with 'yield'; end it with one yield of the carried values")
            }
        }
    }

    // MARK: Instructions

    mutating func check(_ inst: Instruction, carried: [Value]?, isLast: Bool) {
        let label = Self.label(inst)
        let expectsResult: Bool
        switch inst.op {
        case .store, .yield: expectsResult = false
        case .load, .fill, .index, .unary, .binary, .select, .gather, .broadcast, .reduce, .scan, .dot, .transpose,
            .concat, .mask,
            .loop:
            expectsResult = true
        }
        if case .loop(let loop) = inst.op {
            checkLoop(inst, loop, label: label)
            return
        }
        if expectsResult && inst.results.count != 1 {
            report(
                "\(label): \(inst.op.mnemonic) defines exactly one value but has \(inst.results.count) results")
        } else if !expectsResult && !inst.results.isEmpty {
            report("\(label): \(inst.op.mnemonic) defines no value but has \(inst.results.count) results")
        }
        let result = inst.results.count == 1 ? inst.results[0].type : nil
        switch inst.op {
        case .load(let t, let access):
            guard let tensor = tensor(t, label) else { break }
            let sizes = checkAccess(access, tensor: tensor, label: label)
            if let result, let sizes, result.shape != sizes {
                report(
                    "\(label): the result shape \(result.shape) does not match the loaded slice sizes \(sizes) "
                        + "of '\(tensor.name)'")
            }
        case .store(let v, let t, let access):
            let value = type(of: v, label)
            guard let tensor = tensor(t, label) else { break }
            if isInput(t) {
                report("\(label): stores to input tensor '\(tensor.name)'; inputs are read-only")
            }
            let sizes = checkAccess(access, tensor: tensor, label: label)
            if let value, let sizes, value.shape != sizes {
                report(
                    "\(label): the stored value \(v) has shape \(value.shape) but the slice sizes of "
                        + "'\(tensor.name)' are \(sizes)")
            }
        case .fill:
            break
        case .index(let e, let axis):
            checkIndex(e, label)
            if let axis, let result, axis < 0 || axis >= result.rank {
                report(
                    "\(label): index axis \(axis) is out of range for the result shape \(result.shape); "
                        + "use an axis below \(result.rank), or none")
            }
        case .concat(let a, let b, let axis):
            guard let ta = type(of: a, label), let tb = type(of: b, label), let result else { break }
            if axis < 0 || axis >= ta.rank {
                report(
                    "\(label): concat axis \(axis) is out of range for the operand shape \(ta.shape); use an axis below \(ta.rank)"
                )
                break
            }
            var expected = ta.shape
            if tb.rank == ta.rank { expected[axis] += tb.shape[axis] }
            var others = (ta.shape, tb.shape)
            if tb.rank == ta.rank {
                others.0[axis] = 0
                others.1[axis] = 0
            }
            if others.0 != others.1 {
                report(
                    "\(label): operand shapes \(ta.shape) and \(tb.shape) differ off the concat axis \(axis); "
                        + "use blocks that agree on every other axis")
            } else if expected != result.shape {
                report(
                    "\(label): the result shape \(result.shape) should be \(expected), the operands joined along axis \(axis)"
                )
            }
        case .unary(_, let a):
            if let ta = type(of: a, label), let result, ta.shape != result.shape {
                report("\(label): the result shape \(result.shape) differs from the operand's shape \(ta.shape)")
            }
        case .binary(_, let a, let b):
            let ta = type(of: a, label)
            let tb = type(of: b, label)
            guard let ta, let tb, let result else { break }
            let expected: [Int]?
            if ta.shape == tb.shape {
                expected = ta.shape
            } else if ta.rank == 0 {
                expected = tb.shape
            } else if tb.rank == 0 {
                expected = ta.shape
            } else {
                expected = nil
                report(
                    "\(label): operand shapes \(ta.shape) and \(tb.shape) differ; use equal shapes or one scalar f32[]")
            }
            if let expected, expected != result.shape {
                report("\(label): the result shape \(result.shape) should be \(expected)")
            }
        case .select(let c, let a, let b):
            let types = [type(of: c, label), type(of: a, label), type(of: b, label)]
            guard let result, types.allSatisfy({ $0 != nil }) else { break }
            let shapes = types.compactMap { $0?.shape }.filter { !$0.isEmpty }
            if let first = shapes.first, !shapes.allSatisfy({ $0 == first }) {
                report(
                    "\(label): operand shapes \(types.compactMap { $0?.shape }) differ; use equal shapes or scalars f32[]"
                )
            } else if (shapes.first ?? []) != result.shape {
                report("\(label): the result shape \(result.shape) should be \(shapes.first ?? [])")
            }
        case .gather(let t, let access, let index, let axis):
            let indexType = type(of: index, label)
            guard let tensor = tensor(t, label) else { break }
            guard axis >= 0 && axis < tensor.shape.count else {
                report(
                    "\(label): gather axis \(axis) is out of range for tensor '\(tensor.name)' of rank "
                        + "\(tensor.shape.count)")
                break
            }
            var others = tensor
            others.shape.remove(at: axis)
            guard checkAccess(access, tensor: others, label: label) != nil, let indexType, let result else { break }
            let expected = Op.gatherShape(access, axis: axis, indexShape: indexType.shape)
            if result.shape != expected {
                report(
                    "\(label): the result shape \(result.shape) does not match the gathered shape \(expected) "
                        + "(slices before axis \(axis), the index block \(indexType.shape), slices after)")
            }
        case .broadcast(let a, let axis):
            guard let ta = type(of: a, label), let result else { break }
            guard axis >= 0 && axis <= ta.rank else {
                report("\(label): broadcast axis \(axis) is out of range for a rank-\(ta.rank) operand")
                break
            }
            var reduced = result.shape
            if result.rank == ta.rank + 1 {
                reduced.remove(at: axis)
            }
            if result.rank != ta.rank + 1 || reduced != ta.shape {
                report(
                    "\(label): broadcasting shape \(ta.shape) along axis \(axis) cannot give shape \(result.shape)")
            }
        case .reduce(_, let a, let axis):
            guard let ta = type(of: a, label), let result else { break }
            guard axis >= 0 && axis < ta.rank else {
                report("\(label): reduce axis \(axis) is out of range for a rank-\(ta.rank) operand")
                break
            }
            var expected = ta.shape
            expected.remove(at: axis)
            if expected != result.shape {
                report(
                    "\(label): reducing shape \(ta.shape) along axis \(axis) gives \(expected), not \(result.shape)")
            }
        case .scan(_, let a, let axis, _, _):
            guard let ta = type(of: a, label), let result else { break }
            if axis < 0 || axis >= ta.rank {
                report(
                    "\(label): scan axis \(axis) is out of range for a rank-\(ta.rank) operand; use 0 ..< \(ta.rank)")
            } else if ta.shape != result.shape {
                report("\(label): the result shape \(result.shape) of scan should be the operand's shape \(ta.shape)")
            }
        case .dot(let a, let b, let transposeA, let transposeB, _):
            let ta = type(of: a, label)
            let tb = type(of: b, label)
            guard let ta, let tb, let result else { break }
            guard ta.rank == 2 && tb.rank == 2 else {
                report("\(label): dot needs rank-2 operands, got shapes \(ta.shape) and \(tb.shape)")
                break
            }
            let (m, k1) = transposeA ? (ta.shape[1], ta.shape[0]) : (ta.shape[0], ta.shape[1])
            let (k2, n) = transposeB ? (tb.shape[1], tb.shape[0]) : (tb.shape[0], tb.shape[1])
            if k1 != k2 {
                report(
                    "\(label): the inner sizes of dot differ (\(k1) and \(k2)) for shapes \(ta.shape) and \(tb.shape)")
            } else if result.shape != [m, n] {
                report("\(label): the result shape \(result.shape) of dot should be \([m, n])")
            }
        case .transpose(let a):
            guard let ta = type(of: a, label), let result else { break }
            guard ta.rank == 2 else {
                report("\(label): transpose needs a rank-2 operand, got shape \(ta.shape)")
                break
            }
            if result.shape != [ta.shape[1], ta.shape[0]] {
                report(
                    "\(label): transposing shape \(ta.shape) gives \([ta.shape[1], ta.shape[0]]), not \(result.shape)")
            }
        case .mask(let a, let row, let column, _, _):
            checkIndex(row, label)
            checkIndex(column, label)
            guard let ta = type(of: a, label), let result else { break }
            if ta.rank != 2 {
                report("\(label): mask needs a rank-2 operand, got shape \(ta.shape)")
            } else if result.shape != ta.shape {
                report("\(label): the result shape \(result.shape) differs from the operand's shape \(ta.shape)")
            }
        case .yield(let values):
            let types = values.map { type(of: $0, label) }
            guard let carried else {
                report("\(label): 'yield' outside a loop; only a loop body ends with yield")
                break
            }
            if !isLast {
                report("\(label): 'yield' must be the last instruction of its loop body")
            }
            if values.count != carried.count {
                report("\(label): yields \(values.count) values but the loop carries \(carried.count)")
            } else {
                for (k, (t, c)) in zip(types, carried).enumerated() {
                    if let t, t != c.type {
                        report(
                            "\(label): yielded value \(values[k]) has type \(t) but carried value \(c.id) "
                                + "has type \(c.type)")
                    }
                }
            }
        case .loop:
            break
        }
        for r in inst.results { define(r, label) }
    }

    mutating func checkLoop(_ inst: Instruction, _ loop: Loop, label: String) {
        let initialTypes = loop.initial.map { type(of: $0, label) }
        checkIndex(loop.lower, label)
        checkIndex(loop.upper, label)
        let name = loop.variable.name
        if indexScope.contains(name) {
            report(
                "\(label): loop variable '\(name)' shadows a grid or loop variable of the same name; rename it")
        }
        let counts = [inst.results.count, loop.carried.count, loop.initial.count]
        if counts[0] != counts[1] || counts[1] != counts[2] {
            report(
                "\(label): the loop has \(counts[0]) results, \(counts[1]) carried values and \(counts[2]) initial "
                    + "values; they must be equal in number")
        } else {
            for k in 0..<counts[0] {
                let c = loop.carried[k]
                if let t = initialTypes[k], t != c.type {
                    report(
                        "\(label): carried value \(c.id) has type \(c.type) but its initial value \(loop.initial[k]) "
                            + "has type \(t)")
                }
                let r = inst.results[k]
                if r.type != c.type {
                    report(
                        "\(label): result \(r.id) has type \(r.type) but carried value \(c.id) has type \(c.type)")
                }
            }
        }
        // Results are defined (a body value may not reuse their numbers) but visible only after the loop.
        for r in inst.results { checkFresh(r, label) }
        let savedVisible = visible
        indexScope.append(name)
        var reads: [(String, LoopCondition)] = []
        if let b = loop.bounds { reads += [("bound", b.lower), ("bound", b.upper)] }
        if let l = loop.links { reads += [("link", l.next), ("bound", l.mode)] }
        reads +=
            (loop.condition.map { [("condition", $0)] } ?? [])
            + (loop.full.map { [("full element", $0.element)] } ?? [])
        for (what, read) in reads {
            guard let tensor = tensor(read.tensor, label) else { continue }
            for e in read.indices { checkIndex(e, label) }
            if read.indices.count != tensor.shape.count {
                report(
                    "\(label): the loop's \(what) gives \(read.indices.count) indices for tensor "
                        + "'\(tensor.name)' of rank \(tensor.shape.count); give one element index per axis")
            }
            let types: [ElementType] =
                what == "bound" || what == "link" ? [.i32] : what == "condition" ? [.bool, .i32] : [.bool]
            if !types.contains(tensor.elementType) {
                report(
                    "\(label): the loop's \(what) reads '\(tensor.name)' of type \(tensor.elementType); "
                        + "a \(what) reads \(types[0] == .i32 ? "an" : "a") "
                        + types.map(\.description).joined(separator: " or ") + " tensor")
            }
            if what == "bound" && read.indices.contains(where: { $0.variables.contains(loop.variable) }) {
                report("\(label): the loop's bounds are read before its iterations; they cannot name '\(name)'")
            }
        }
        if (loop.full != nil || loop.bounds != nil) && loop.condition == nil {
            report("\(label): a loop's 'within' and 'full' come with its guard ('if T[...]'); add one or drop them")
        }
        if loop.links != nil && loop.bounds == nil {
            report(
                "\(label): a loop's 'next ... when ...' links come with its 'within' bounds; add them or drop the links"
            )
        }
        if let f = loop.full {
            let defined = Set(loop.body.flatMap(\.results).map(\.id))
            for v in f.trueValues where !defined.contains(v) {
                report("\(label): 'full ... true(\(v))' names a value the loop body does not define")
            }
        }
        for c in loop.carried { define(c, label) }
        checkBody(loop.body, carried: loop.carried)
        indexScope.removeLast()
        visible = savedVisible
        for r in inst.results { visible[r.id] = r.type }
    }

    // MARK: Helpers

    static func label(_ inst: Instruction) -> String {
        let results = inst.results.map(\.id.description).joined(separator: ", ")
        var text = results.isEmpty ? "" : results + " = "
        text += inst.op.mnemonic
        switch inst.op {
        case .loop(let loop): text += " " + loop.variable.name
        case .store(let v, _, _): text += " \(v)"
        case .load, .fill, .index, .unary, .binary, .select, .gather, .broadcast, .reduce, .scan, .dot, .transpose,
            .concat, .mask,
            .yield:
            break
        }
        return "'" + text + "'"
    }

    /// The type of an operand, or nil (after recording an error) when it is not visible.
    mutating func type(of v: ValueID, _ label: String) -> BlockType? {
        if let t = visible[v] { return t }
        if defined.contains(v) {
            report("\(label): value \(v) is used outside the loop that defines it; carry it out with 'yield'")
        } else if allDefined.contains(v) {
            report("\(label): value \(v) is used before it is defined")
        } else {
            report("\(label): value \(v) is never defined")
        }
        return nil
    }

    /// Records a new value: checks it is not defined twice, its tier and its shape.
    mutating func define(_ value: Value, _ label: String) {
        checkFresh(value, label)
        visible[value.id] = value.type
    }

    mutating func checkFresh(_ value: Value, _ label: String) {
        if !defined.insert(value.id).inserted {
            report("\(label): value \(value.id) is defined twice; every value must be defined once")
        }
        let t = value.type
        if t.tier == .global {
            report("\(label): value \(value.id) has tier global; block values live in the local or reg tier")
        }
        if t.rank > 2 {
            report("\(label): value \(value.id) has rank \(t.rank) (\(t)); blocks have rank 0, 1 or 2")
        }
        if t.shape.contains(where: { $0 <= 0 }) {
            report("\(label): value \(value.id) has shape \(t.shape); block sizes must be positive")
        }
    }

    mutating func tensor(_ id: TensorID, _ label: String) -> GlobalTensor? {
        guard id.index >= 0 && id.index < program.tensors.count else {
            report("\(label): tensor \(id) does not exist")
            return nil
        }
        return program.tensors[id.index]
    }

    /// Whether the tensor, or the tensor whose storage it views, is an input.
    func isInput(_ id: TensorID) -> Bool {
        var current = id.index
        for _ in 0...program.tensors.count {
            let t = program.tensors[current]
            if t.role == .input { return true }
            guard let next = t.viewOf, next.index >= 0 && next.index < program.tensors.count else { return false }
            current = next.index
        }
        return false
    }

    /// Checks an access list; returns the slice sizes (the block shape), or nil if malformed.
    mutating func checkAccess(_ access: [AxisAccess], tensor: GlobalTensor, label: String) -> [Int]? {
        var sizes: [Int] = []
        for a in access {
            switch a {
            case .point(let e):
                checkIndex(e, label)
            case .slice(let start, let size):
                checkIndex(start, label)
                if size <= 0 {
                    report("\(label): slice size \(size) of '\(tensor.name)' must be positive")
                }
                sizes.append(size)
            }
        }
        guard access.count == tensor.shape.count else {
            report(
                "\(label): \(access.count) indices for tensor '\(tensor.name)' of rank \(tensor.shape.count); "
                    + "give one index per axis")
            return nil
        }
        return sizes
    }

    /// Checks that an index expression only reads variables in scope and never divides by zero.
    mutating func checkIndex(_ e: IndexExpr, _ label: String) {
        for v in e.variables where !indexScope.contains(v.name) {
            let inScope = indexScope.isEmpty ? "none" : indexScope.joined(separator: ", ")
            report("\(label): index variable '\(v.name)' is not in scope (in scope: \(inScope))")
        }
        if Self.dividesByZero(e) {
            report("\(label): index expression '\(e)' divides by zero")
        }
    }

    static func dividesByZero(_ e: IndexExpr) -> Bool {
        switch e {
        case .constant, .variable: return false
        case .add(let a, let b), .min(let a, let b), .max(let a, let b): return dividesByZero(a) || dividesByZero(b)
        case .mul(let a, _): return dividesByZero(a)
        case .floorDiv(let a, let c): return c == 0 || dividesByZero(a)
        }
    }
}
