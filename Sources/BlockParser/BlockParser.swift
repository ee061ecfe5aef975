import BlockIR

/// Parses the `.block` text form (see `Docs/IR.md`) into a `Program`.
///
/// Value numbers are kept as written (`%7` becomes `ValueID(7)`); tensor names resolve to
/// `TensorID`s. The parser checks what it needs to build the program — syntax, tensor names, that
/// every value is defined before it is used and only once, that index variables are in scope,
/// that `yield` ends each loop body — and leaves shapes, tiers and capacities to `Verifier`.
/// It never traps: every problem is a `Diagnostic` at the offending token.
public enum BlockParser {
    /// The deepest loop nesting (and expression nesting) accepted.
    public static let maximumNesting = 100
    /// The largest element count accepted for a tensor or block type (2^40).
    public static let maximumElementCount = 1 << 40

    /// Parses a program.
    public static func parse(_ source: String) throws(Diagnostic) -> Program {
        try parseWithSourceMap(source).program
    }

    /// Parses a program and records where its tensors, kernels and instructions are written, so
    /// the verifier's errors can carry `file:line:col`.
    public static func parseWithSourceMap(_ source: String) throws(Diagnostic) -> (
        program: Program, sourceMap: BlockSourceMap
    ) {
        var parser = Parser(tokens: try BlockLexer.tokenize(source))
        let program = try parser.parseProgram()
        return (program, parser.sourceMap)
    }
}

private let unaryOps: [String: UnaryOp] = Dictionary(uniqueKeysWithValues: UnaryOp.allCases.map { ($0.rawValue, $0) })
private let binaryOps: [String: BinaryOp] = Dictionary(
    uniqueKeysWithValues: BinaryOp.allCases.map { ($0.rawValue, $0) })

private struct Parser {
    let tokens: [BlockToken]
    var position = 0

    var tensors: [GlobalTensor] = []
    var tensorLines: [String: Int] = [:]
    var kernels: [Kernel] = []
    /// Where the tensors, kernels and instructions parsed so far are.
    var sourceMap = BlockSourceMap()
    /// The index path of the instruction being parsed in the current kernel.
    var instructionPath: [Int] = []

    // Per kernel.
    /// Where each value of the current kernel is defined.
    var definedAt: [Int: SourceLocation] = [:]
    /// The values visible at the current point.
    var visible: Set<Int> = []
    /// The index variables in scope, innermost last.
    var indexScope: [String] = []
    /// The current loop nesting.
    var loopDepth = 0

    init(tokens: [BlockToken]) { self.tokens = tokens }

    // MARK: Tokens

    var current: BlockToken { tokens[Swift.min(position, tokens.count - 1)] }

    mutating func advance() {
        if position < tokens.count - 1 { position += 1 }
    }

    func isSymbol(_ s: String) -> Bool { current.kind == .symbol && current.text == s }
    func isKeyword(_ s: String) -> Bool { current.kind == .identifier && current.text == s }

    mutating func skipNewlines() {
        while current.kind == .newline { advance() }
    }

    mutating func expectSymbol(_ s: String, _ what: String) throws(Diagnostic) {
        guard isSymbol(s) else { throw error("expected \(what), found \(current.quoted)") }
        advance()
    }

    mutating func expectKeyword(_ s: String, _ what: String) throws(Diagnostic) {
        guard isKeyword(s) else { throw error("expected \(what), found \(current.quoted)") }
        advance()
    }

    mutating func identifier(_ what: String) throws(Diagnostic) -> String {
        guard current.kind == .identifier else { throw error("expected \(what), found \(current.quoted)") }
        defer { advance() }
        return current.text
    }

    mutating func endOfLine(after what: String) throws(Diagnostic) {
        guard current.kind == .newline || current.kind == .end else {
            throw error("unexpected \(current.quoted) after \(what); write one statement per line")
        }
        advance()
    }

    func error(_ message: String) -> Diagnostic { Diagnostic(message, at: current.location) }

    /// A non-negative integer literal.
    mutating func integer(_ what: String) throws(Diagnostic) -> Int {
        guard current.kind == .integer else { throw error("expected \(what), found \(current.quoted)") }
        guard let value = Int(current.text) else {
            throw error("the integer \(current.text) is too large; use at most \(Int.max)")
        }
        advance()
        return value
    }

    /// An integer literal with an optional leading `-`.
    mutating func signedInteger(_ what: String) throws(Diagnostic) -> Int {
        if isSymbol("-") {
            advance()
            return -(try integer(what))
        }
        return try integer(what)
    }

    /// A float constant: `0.0`, `-inf`, `nan`, `1e-06`, `3`.
    mutating func float(_ what: String) throws(Diagnostic) -> Float {
        let start = current
        var text = ""
        if isSymbol("-") {
            text = "-"
            advance()
        }
        switch current.kind {
        case .integer, .float:
            text += current.text
        case .identifier where current.text == "inf" || current.text == "nan":
            text += current.text
        case .identifier, .value, .symbol, .newline, .end:
            throw error("expected \(what) (a number such as 0.0, -inf or 1e-06), found \(current.quoted)")
        }
        guard let value = Float(text) else {
            throw Diagnostic("'\(text)' is not a valid number", at: start.location)
        }
        advance()
        return value
    }

    // MARK: Program

    mutating func parseProgram() throws(Diagnostic) -> Program {
        skipNewlines()
        guard isKeyword("program") else {
            throw error("expected 'program NAME' at the start of a block program, found \(current.quoted)")
        }
        advance()
        let name = try identifier("the program's name after 'program'")
        try endOfLine(after: "the program's name")
        while true {
            skipNewlines()
            if current.kind == .end { break }
            if isKeyword("tensor") {
                guard kernels.isEmpty else {
                    throw error("tensor declarations must come before the first kernel; move this line up")
                }
                try parseTensor()
            } else if isKeyword("kernel") {
                try parseKernel()
            } else {
                throw error("expected 'tensor' or 'kernel', found \(current.quoted)")
            }
        }
        return Program(name: name, tensors: tensors, kernels: kernels)
    }

    mutating func parseTensor() throws(Diagnostic) {
        advance()
        let nameToken = current
        let name = try identifier("a tensor name after 'tensor'")
        if let line = tensorLines[name] {
            throw Diagnostic(
                "tensor '\(name)' is already declared on line \(line); give each tensor its own name",
                at: nameToken.location)
        }
        try expectSymbol(":", "':' and a type after the tensor name")
        // A tensor's element type: f32 (the type of blocks too), f16, bf16, i32 or bool.
        var elementType = ElementType.f32
        let shape: [Int]
        let tier: Tier
        if current.kind == .identifier, let e = ElementType(rawValue: current.text), e != .f32 {
            advance()
            elementType = e
            (shape, tier) = try parseShapeAndTier(after: e.rawValue)
        } else {
            (shape, tier) = try parseType()
        }
        guard tier == .global else {
            throw Diagnostic(
                "a tensor lives in global memory; write '@global' instead of '@\(tier.rawValue)'",
                at: tokens[Swift.max(position - 1, 0)].location)  // the tier name
        }
        let roleToken = current
        let roleName = try identifier("the tensor's role (input, output or temp)")
        guard let role = TensorRole(rawValue: roleName) else {
            throw Diagnostic("unknown tensor role '\(roleName)'; use input, output or temp", at: roleToken.location)
        }
        var view: TensorID?
        var window: [Int]?
        if isKeyword("view") {
            advance()
            let otherToken = current
            let other = try identifier("the name of the viewed tensor after 'view'")
            guard let id = tensors.firstIndex(where: { $0.name == other }) else {
                throw Diagnostic(
                    "unknown tensor '\(other)' after 'view'; a view must name a tensor declared above it",
                    at: otherToken.location)
            }
            view = TensorID(id)
            if isKeyword("at") {
                // `view OTHER at [o, ...]`: the box of OTHER at these element offsets.
                advance()
                try expectSymbol("[", "'[' and one element offset per axis of '\(other)' after 'at'")
                var offsets: [Int] = []
                while true {
                    offsets.append(try integer("an element offset"))
                    if isSymbol(",") {
                        advance()
                        continue
                    }
                    try expectSymbol("]", "',' or ']' after a window offset")
                    break
                }
                window = offsets
            }
        }
        var offsetsInto: Int?
        var segmentMaxLength: Int?
        if isKeyword("offsets") {
            // `offsets into N`: segment offsets checked at run time (non-decreasing, in 0 ... N).
            advance()
            guard isKeyword("into") else { throw error("expected 'into N' after 'offsets'") }
            advance()
            offsetsInto = try integer("the number of positions the offsets split")
            guard role == .input, elementType == .i32, shape.count == 1 else {
                throw error("'offsets into N' marks a rank-1 i32 input; '\(name)' is \(elementType)\(shape) \(role)")
            }
            if isKeyword("max_len") {
                // `max_len L`: no segment holds more than L positions (checked at run time).
                advance()
                let m = try integer("the most positions one segment may hold")
                guard m >= 1 else { throw error("'max_len' must be at least 1, got \(m)") }
                segmentMaxLength = m
            }
        }
        try endOfLine(after: "the tensor declaration")
        tensorLines[name] = nameToken.location.line
        var tensor = GlobalTensor(
            name: name, shape: shape, role: role, viewOf: view, window: window, elementType: elementType)
        tensor.offsetsInto = offsetsInto
        tensor.segmentMaxLength = segmentMaxLength
        tensors.append(tensor)
        sourceMap.tensors.append(nameToken.location)
    }

    /// `f32[d, ...] @tier`: the type of a block value (blocks compute in f32).
    mutating func parseType() throws(Diagnostic) -> (shape: [Int], tier: Tier) {
        if let other = ElementType(rawValue: current.text), other != .f32, current.kind == .identifier {
            throw error(
                "blocks compute in f32; '\(other)' is an element type of global tensors only (loads convert to f32)")
        }
        guard isKeyword("f32") else {
            throw error("expected a type such as 'f32[64,64] @local', found \(current.quoted)")
        }
        advance()
        return try parseShapeAndTier(after: "f32")
    }

    /// `[d, ...] @tier` after an element type.
    mutating func parseShapeAndTier(after elementType: String) throws(Diagnostic) -> (shape: [Int], tier: Tier) {
        let open = current
        try expectSymbol("[", "'[' after '\(elementType)'")
        var shape: [Int] = []
        var count = 1
        if !isSymbol("]") {
            while true {
                let d = try integer("a dimension size")
                shape.append(d)
                let (product, overflow) = count.multipliedReportingOverflow(by: Swift.max(d, 1))
                guard !overflow, product <= BlockParser.maximumElementCount, d <= BlockParser.maximumElementCount
                else {
                    throw Diagnostic(
                        "the shape has more than 2^40 elements; blockc supports smaller tensors", at: open.location)
                }
                count = product
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
        }
        try expectSymbol("]", "',' or ']' in the shape")
        try expectSymbol("@", "'@' and a tier (global, local or reg) after the shape")
        let tierToken = current
        let tierName = try identifier("a tier (global, local or reg) after '@'")
        guard let tier = Tier(rawValue: tierName) else {
            throw Diagnostic("unknown tier '\(tierName)'; use global, local or reg", at: tierToken.location)
        }
        return (shape, tier)
    }

    // MARK: Kernels

    mutating func parseKernel() throws(Diagnostic) {
        let kernelToken = current
        advance()
        let nameToken = current
        let name = try identifier("a kernel name after 'kernel'")
        if kernels.contains(where: { $0.name == name }) {
            throw Diagnostic("kernel '\(name)' is defined twice; give each kernel its own name", at: nameToken.location)
        }
        try expectKeyword("grid", "'grid(...)' after the kernel name")
        try expectSymbol("(", "'(' after 'grid'")
        var grid: [GridAxis] = []
        if !isSymbol(")") {
            while true {
                let variable = try identifier("a grid variable, as in 'grid(i < 16)'")
                try expectSymbol("<", "'<' and the extent after the grid variable")
                let extent = try integer("the grid extent")
                grid.append(GridAxis(IndexVar(variable), extent))
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
        }
        try expectSymbol(")", "',' or ')' in the grid")
        try expectSymbol("{", "'{' after the grid")
        try endOfLine(after: "'{'")
        definedAt = [:]
        visible = []
        indexScope = grid.map(\.variable.name)
        loopDepth = 0
        let body = try parseBody(opener: "kernel '\(name)'", openedAt: kernelToken.location, inLoop: false)
        try endOfLine(after: "'}'")
        kernels.append(Kernel(name: name, grid: grid, body: body))
        sourceMap.kernels.append(kernelToken.location)
    }

    /// Parses instructions up to and including the closing `}`.
    mutating func parseBody(opener: String, openedAt: SourceLocation, inLoop: Bool) throws(Diagnostic)
        -> [Instruction]
    {
        var body: [Instruction] = []
        var yielded = false
        while true {
            skipNewlines()
            if current.kind == .end {
                throw error("missing '}' to close \(opener) opened on line \(openedAt.line)")
            }
            if isSymbol("}") {
                if inLoop && !yielded {
                    throw error("a loop body must end with 'yield' (with one value per carried value)")
                }
                advance()
                return body
            }
            if yielded {
                throw error("'yield' must be the last instruction of the loop body; move this instruction above it")
            }
            instructionPath.append(body.count)
            sourceMap.instructions[InstructionPath(kernel: kernels.count, indices: instructionPath)] = current.location
            let inst = try parseInstruction(inLoop: inLoop)
            instructionPath.removeLast()
            if case .yield = inst.op { yielded = true }
            body.append(inst)
        }
    }

    mutating func parseInstruction(inLoop: Bool) throws(Diagnostic) -> Instruction {
        var resultTokens: [BlockToken] = []
        if current.kind == .value {
            while true {
                guard current.kind == .value else { throw error("expected a result value such as '%3'") }
                resultTokens.append(current)
                advance()
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
            try expectSymbol("=", "'=' after the results")
        }
        let opToken = current
        let mnemonic = try identifier("an instruction (load, store, fill, an elementwise op, dot, for, yield, ...)")
        if mnemonic == "for" {
            return try parseLoop(resultTokens: resultTokens, at: opToken)
        }
        if mnemonic == "store" || mnemonic == "yield" {
            if let first = resultTokens.first {
                throw Diagnostic("'\(mnemonic)' has no result; remove '%\(first.text) ='", at: first.location)
            }
        } else if resultTokens.isEmpty {
            throw Diagnostic("'\(mnemonic)' needs a result: write '%N = \(mnemonic) ...'", at: opToken.location)
        } else if resultTokens.count > 1 {
            throw Diagnostic("'\(mnemonic)' defines one value; remove the extra results", at: resultTokens[1].location)
        }
        let op: Op
        switch mnemonic {
        case "load":
            let (tensor, access) = try parseTensorAccess()
            op = .load(tensor, access)
        case "store":
            let v = try use()
            try expectSymbol("->", "'->' and the destination after the stored value")
            let (tensor, access) = try parseTensorAccess()
            op = .store(v, tensor, access)
            try endOfLine(after: "the store")
            return Instruction([], op)
        case "yield":
            guard inLoop else {
                throw Diagnostic("'yield' outside a loop; only a loop body ends with 'yield'", at: opToken.location)
            }
            var values: [ValueID] = []
            if current.kind == .value {
                values = try useList()
            }
            try endOfLine(after: "the yield")
            return Instruction([], .yield(values))
        case "fill":
            op = .fill(try float("the fill constant"))
        case "index":
            let e = try parseIndexExpr(depth: 0)
            var axis: Int?
            if isKeyword("axis") {
                advance()
                axis = try integer("the axis number")
            }
            op = .index(e, axis: axis)
        case "broadcast":
            let a = try use()
            try expectKeyword("axis", "'axis K' after the operand of broadcast")
            op = .broadcast(a, axis: try integer("the axis number"))
        case "reduce_sum", "reduce_max":
            let a = try use()
            try expectKeyword("axis", "'axis K' after the operand of \(mnemonic)")
            op = .reduce(mnemonic == "reduce_sum" ? .sum : .max, a, axis: try integer("the axis number"))
        case "scan_sum", "scan_max":
            let a = try use()
            try expectKeyword("axis", "'axis K' after the operand of \(mnemonic)")
            let axis = try integer("the axis number")
            var reverse = false
            var exclusive = false
            while isKeyword("reverse") || isKeyword("exclusive") {
                if isKeyword("reverse") {
                    guard !reverse, !exclusive else { throw error("write 'reverse' once, before 'exclusive'") }
                    reverse = true
                } else {
                    guard !exclusive else { throw error("'exclusive' is given twice; write it once") }
                    exclusive = true
                }
                advance()
            }
            op = .scan(mnemonic == "scan_sum" ? .sum : .max, a, axis: axis, reverse: reverse, exclusive: exclusive)
        case "dot":
            let a = try use()
            try expectSymbol(",", "',' and the second operand of dot")
            let b = try use()
            var ta = false
            var tb = false
            while isKeyword("transpose_a") || isKeyword("transpose_b") {
                if isKeyword("transpose_a") {
                    guard !ta, !tb else { throw error("write 'transpose_a' once, before 'transpose_b'") }
                    ta = true
                } else {
                    guard !tb else { throw error("'transpose_b' is given twice; write it once") }
                    tb = true
                }
                advance()
            }
            var precision = DotPrecision.f32
            if isKeyword("bf16") {
                precision = .bf16
                advance()
            }
            op = .dot(a, b, transposeA: ta, transposeB: tb, precision: precision)
        case "transpose":
            op = .transpose(try use())
        case "concat":
            let a = try use()
            try expectSymbol(",", "',' and the second operand of concat")
            let b = try use()
            try expectKeyword("axis", "'axis K' after the operands of concat")
            op = .concat(a, b, axis: try integer("the axis number"))
        case "select":
            let c = try use()
            try expectSymbol(",", "',' and the value where the condition holds")
            let a = try use()
            try expectSymbol(",", "',' and the value where it does not")
            op = .select(c, a, try use())
        case "gather":
            op = try parseGather()
        case "mask":
            let a = try use()
            try expectKeyword("at", "'at (ROW, COL)' after the operand of mask")
            try expectSymbol("(", "'(' before the row offset")
            let row = try parseIndexExpr(depth: 0)
            try expectSymbol(",", "',' between the row and column offsets")
            let column = try parseIndexExpr(depth: 0)
            try expectSymbol(")", "')' after the column offset")
            try expectKeyword("if", "'if PREDICATE' after the offsets")
            let predicate = try parsePredicate()
            try expectKeyword("else", "'else C' after the predicate")
            let fill = try float("the constant after 'else'")
            op = .mask(a, rowOffset: row, columnOffset: column, predicate, fill: fill)
        default:
            if let u = unaryOps[mnemonic] {
                op = .unary(u, try use())
            } else if let b = binaryOps[mnemonic] {
                let x = try use()
                try expectSymbol(",", "',' and the second operand of \(mnemonic)")
                op = .binary(b, x, try use())
            } else {
                throw Diagnostic(
                    "unknown instruction '\(mnemonic)'; expected load, store, fill, an elementwise op (exp, add, ...), "
                        + "index, select, gather, broadcast, reduce_sum, reduce_max, dot, transpose, concat, mask, for or yield",
                    at: opToken.location)
            }
        }
        guard isSymbol(":") else {
            throw error("expected ':' and a type after the instruction, found \(current.quoted)")
        }
        advance()
        let (shape, tier) = try parseType()
        try endOfLine(after: "the type")
        let result = try define(resultTokens[0])
        return Instruction([Value(result, BlockType(shape, tier))], op)
    }

    mutating func parseLoop(resultTokens: [BlockToken], at forToken: BlockToken) throws(Diagnostic) -> Instruction {
        guard loopDepth < BlockParser.maximumNesting else {
            throw Diagnostic(
                "loops are nested more than \(BlockParser.maximumNesting) deep; split the kernel",
                at: forToken.location)
        }
        let variable = try identifier("the loop variable after 'for'")
        try expectKeyword("in", "'in' after the loop variable")
        let lower = try parseIndexExpr(depth: 0)
        try expectSymbol("..<", "'..<' between the loop bounds")
        let upper = try parseIndexExpr(depth: 0)
        // `T[e, ...]`: one element per axis; the counter is in scope when `counter` says so.
        func element(_ keyword: String, counter: Bool) throws(Diagnostic) -> LoopCondition {
            if counter { indexScope.append(variable) }
            let (tensor, access) = try parseTensorAccess()
            if counter { indexScope.removeLast() }
            var indices: [IndexExpr] = []
            for a in access {
                guard case .point(let e) = a else {
                    throw error("a loop's '\(keyword)' reads one element: give a point index per axis, not a slice")
                }
                indices.append(e)
            }
            return LoopCondition(tensor: tensor, indices: indices)
        }
        var bounds: LoopBounds?
        if isKeyword("within") {
            advance()
            let lowerBound = try element("within", counter: false)
            try expectSymbol("..<", "'..<' between the loop's run-time bounds")
            bounds = LoopBounds(lower: lowerBound, upper: try element("within", counter: false))
        }
        var links: LoopLinks?
        if isKeyword("next") {
            advance()
            let next = try element("next", counter: true)
            guard isKeyword("when") else {
                throw error("expected 'when T[...]' (whether to follow the links) after the loop's 'next' element")
            }
            advance()
            links = LoopLinks(next: next, mode: try element("when", counter: false))
        }
        var condition: LoopCondition?
        if isKeyword("if") {
            advance()
            condition = try element("if", counter: true)
        }
        var full: LoopFullBlocks?
        if isKeyword("full") {
            advance()
            let read = try element("full", counter: true)
            guard isKeyword("true") else { throw error("expected 'true(%n, ...)' after the loop's 'full' element") }
            advance()
            try expectSymbol("(", "'(' after 'true'")
            var values: [ValueID] = []
            while true {
                guard current.kind == .value else { throw error("expected a body value such as '%3' in 'true(...)'") }
                values.append(ValueID(try number(current)))
                advance()
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
            try expectSymbol(")", "',' or ')' in 'true(...)'")
            full = LoopFullBlocks(element: read, trueValues: values)
        }
        var carriedTokens: [BlockToken] = []
        var initial: [ValueID] = []
        if isKeyword("iter") {
            advance()
            try expectSymbol("(", "'(' after 'iter'")
            while true {
                guard current.kind == .value else { throw error("expected a carried value such as '%3 = %0'") }
                carriedTokens.append(current)
                advance()
                try expectSymbol("=", "'=' and the initial value after the carried value")
                initial.append(try use())
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
            try expectSymbol(")", "',' or ')' in the carried values")
        }
        var types: [BlockType] = []
        if !carriedTokens.isEmpty {
            try expectSymbol(":", "':' and one type per carried value after 'iter(...)'")
            while true {
                let (shape, tier) = try parseType()
                types.append(BlockType(shape, tier))
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
        }
        guard resultTokens.count == carriedTokens.count else {
            let what = "the loop has \(resultTokens.count) results but \(carriedTokens.count) carried values"
            throw Diagnostic("\(what); name one result per value in 'iter(...)'", at: forToken.location)
        }
        guard types.count == carriedTokens.count else {
            throw error("expected \(carriedTokens.count) types, one per carried value, found \(current.quoted)")
        }
        let braceToken = current
        try expectSymbol("{", "'{' to open the loop body")
        try endOfLine(after: "'{'")
        // Results are reserved now (a body value may not reuse their numbers) and visible after the loop.
        var results: [Value] = []
        for (token, type) in zip(resultTokens, types) {
            results.append(Value(try reserve(token), type))
        }
        let savedVisible = visible
        indexScope.append(variable)
        loopDepth += 1
        var carried: [Value] = []
        for (token, type) in zip(carriedTokens, types) {
            let id = try reserve(token)
            visible.insert(id.number)
            carried.append(Value(id, type))
        }
        let body = try parseBody(opener: "the loop", openedAt: braceToken.location, inLoop: true)
        try endOfLine(after: "'}'")
        loopDepth -= 1
        indexScope.removeLast()
        visible = savedVisible
        for r in results { visible.insert(r.id.number) }
        var loop = Loop(
            variable: IndexVar(variable), lower: lower, upper: upper, initial: initial, carried: carried, body: body)
        loop.condition = condition
        loop.full = full
        loop.bounds = bounds
        loop.links = links
        return Instruction(results, .loop(loop))
    }

    // MARK: Values

    func number(_ token: BlockToken) throws(Diagnostic) -> Int {
        guard let n = Int(token.text) else {
            throw Diagnostic("the value number %\(token.text) is too large", at: token.location)
        }
        return n
    }

    /// Reads a value operand and checks that it is visible.
    mutating func use() throws(Diagnostic) -> ValueID {
        guard current.kind == .value else { throw error("expected a value such as '%3', found \(current.quoted)") }
        let token = current
        let n = try number(token)
        guard visible.contains(n) else {
            if let site = definedAt[n] {
                throw Diagnostic(
                    "value %\(n) is not visible here: it is defined inside a loop (line \(site.line)); "
                        + "carry it out of the loop with 'yield'",
                    at: token.location)
            }
            throw Diagnostic("value %\(n) is used before it is defined", at: token.location)
        }
        advance()
        return ValueID(n)
    }

    mutating func useList() throws(Diagnostic) -> [ValueID] {
        var values: [ValueID] = []
        while true {
            values.append(try use())
            if isSymbol(",") {
                advance()
                continue
            }
            return values
        }
    }

    /// Records a definition without making it visible.
    mutating func reserve(_ token: BlockToken) throws(Diagnostic) -> ValueID {
        let n = try number(token)
        if let site = definedAt[n] {
            throw Diagnostic(
                "'%\(n)' is defined twice (first on line \(site.line)); give each value its own number",
                at: token.location)
        }
        definedAt[n] = token.location
        return ValueID(n)
    }

    mutating func define(_ token: BlockToken) throws(Diagnostic) -> ValueID {
        let id = try reserve(token)
        visible.insert(id.number)
        return id
    }

    // MARK: Accesses and index expressions

    mutating func parseTensorAccess() throws(Diagnostic) -> (TensorID, [AxisAccess]) {
        let tensor = try parseTensorName()
        try expectSymbol("[", "'[' and one index per tensor axis after the tensor name")
        var access: [AxisAccess] = []
        if !isSymbol("]") {
            while true {
                access.append(try parseAccessEntry())
                if isSymbol(",") {
                    advance()
                    continue
                }
                break
            }
        }
        try expectSymbol("]", "',' or ']' after the index")
        return (tensor, access)
    }

    /// A declared tensor's name.
    mutating func parseTensorName() throws(Diagnostic) -> TensorID {
        let nameToken = current
        let name = try identifier("a tensor name")
        guard let index = tensors.firstIndex(where: { $0.name == name }) else {
            throw Diagnostic(
                "unknown tensor '\(name)'; declare it with a 'tensor' line before the kernels", at: nameToken.location)
        }
        return TensorID(index)
    }

    /// One axis of an access: `e +: n` (a slice) or `e` (a point).
    mutating func parseAccessEntry() throws(Diagnostic) -> AxisAccess {
        let start = try parseIndexExpr(depth: 0)
        guard isSymbol("+:") else { return .point(start) }
        advance()
        return .slice(start: start, size: try integer("the slice size after '+:'"))
    }

    /// `T[acc, ..., %idx, ..., acc]`: a tensor access with the index block in place of the
    /// gathered axis (exactly one value among the entries).
    mutating func parseGather() throws(Diagnostic) -> Op {
        let tensor = try parseTensorName()
        try expectSymbol("[", "'[' and one entry per tensor axis, the index block '%N' at the gathered axis")
        var access: [AxisAccess] = []
        var gathered: (value: ValueID, axis: Int)?
        while true {
            if current.kind == .value {
                if gathered != nil { throw error("gather takes one index block; address the other axes by indices") }
                gathered = (try use(), access.count)
            } else {
                access.append(try parseAccessEntry())
            }
            if isSymbol(",") {
                advance()
                continue
            }
            break
        }
        try expectSymbol("]", "',' or ']' after the index")
        guard let gathered else {
            throw error("gather needs the index block '%N' at the gathered axis, e.g. 'gather E[%1, j * 64 +: 64]'")
        }
        return .gather(tensor, access, index: gathered.value, axis: gathered.axis)
    }

    /// `term (+ term)*`, left-associative.
    mutating func parseIndexExpr(depth: Int) throws(Diagnostic) -> IndexExpr {
        guard depth < BlockParser.maximumNesting else {
            throw error("the index expression is nested more than \(BlockParser.maximumNesting) deep; simplify it")
        }
        var e = try parseIndexTerm(depth: depth)
        while isSymbol("+") {
            advance()
            e = .add(e, try parseIndexTerm(depth: depth))
        }
        return e
    }

    /// `primary ((* | /) constant)*`, left-associative.
    mutating func parseIndexTerm(depth: Int) throws(Diagnostic) -> IndexExpr {
        var e = try parseIndexPrimary(depth: depth)
        while isSymbol("*") || isSymbol("/") {
            let isDivision = isSymbol("/")
            advance()
            let constantToken = current
            let c: Int
            if isSymbol("(") {
                advance()
                c = try signedInteger("an integer constant")
                try expectSymbol(")", "')' after the constant")
            } else {
                guard current.kind == .integer else {
                    throw error(
                        "the right operand of '\(isDivision ? "/" : "*")' must be an integer constant "
                            + "(write 'i * 64', not '64 * i'), found \(current.quoted)")
                }
                c = try integer("an integer constant")
            }
            if isDivision {
                guard c != 0 else {
                    throw Diagnostic("division by zero; divide by a nonzero constant", at: constantToken.location)
                }
                e = .floorDiv(e, c)
            } else {
                e = .mul(e, c)
            }
        }
        return e
    }

    mutating func parseIndexPrimary(depth: Int) throws(Diagnostic) -> IndexExpr {
        switch current.kind {
        case .integer:
            return .constant(try integer("an integer"))
        case .symbol where current.text == "-":
            advance()
            guard current.kind == .integer else {
                throw error("'-' must be followed by an integer constant; index expressions have no negation")
            }
            return .constant(-(try integer("an integer")))
        case .symbol where current.text == "(":
            advance()
            let e = try parseIndexExpr(depth: depth + 1)
            try expectSymbol(")", "')' to close the parenthesis")
            return e
        case .identifier:
            let token = current
            advance()
            if (token.text == "min" || token.text == "max") && isSymbol("(") {
                advance()
                let a = try parseIndexExpr(depth: depth + 1)
                try expectSymbol(",", "',' between the arguments of \(token.text)")
                let b = try parseIndexExpr(depth: depth + 1)
                try expectSymbol(")", "')' after the arguments of \(token.text)")
                return token.text == "min" ? .min(a, b) : .max(a, b)
            }
            guard indexScope.contains(token.text) else {
                let inScope = indexScope.isEmpty ? "none" : indexScope.joined(separator: ", ")
                throw Diagnostic(
                    "unknown index variable '\(token.text)'; the variables in scope are: \(inScope)",
                    at: token.location)
            }
            return .v(token.text)
        case .float, .value, .symbol, .newline, .end:
            throw error(
                "expected an index expression (grid or loop variables, integers, +, *, /, min, max), "
                    + "found \(current.quoted)")
        }
    }

    // MARK: Predicates

    /// `true`, or atoms joined by `&&`: `i - j >= 0`, `-i + j + 255 >= 0`, `i - j == 0`,
    /// `segments(300, 700)`.
    mutating func parsePredicate() throws(Diagnostic) -> Predicate {
        if isKeyword("true") {
            advance()
            return Predicate([])
        }
        var atoms: [PredicateAtom] = []
        while true {
            atoms.append(try parseAtom())
            if isSymbol("&&") {
                advance()
                continue
            }
            return Predicate(atoms)
        }
    }

    mutating func parseAtom() throws(Diagnostic) -> PredicateAtom {
        if isKeyword("segments") {
            advance()
            try expectSymbol("(", "'(' after 'segments'")
            var bounds: [Int] = []
            if !isSymbol(")") {
                while true {
                    bounds.append(try signedInteger("a segment boundary"))
                    if isSymbol(",") {
                        advance()
                        continue
                    }
                    break
                }
            }
            try expectSymbol(")", "',' or ')' in the segment boundaries")
            return .sameSegment(boundaries: bounds)
        }
        let start = current
        var divisor: Int?
        let lhs = try parseAffine(divisor: &divisor)
        let isZero: Bool
        if isSymbol(">=") {
            isZero = false
        } else if isSymbol("==") {
            isZero = true
        } else {
            throw error("expected '>=' or '==' in the mask predicate, found \(current.quoted)")
        }
        advance()
        let rhs = try parseAffine(divisor: &divisor)
        var c: [Int] = []
        for (l, r) in zip(lhs, rhs) {
            let (d, overflow) = l.subtractingReportingOverflow(r)
            guard !overflow, d != Int.min else {
                throw Diagnostic("the predicate's coefficients are too large", at: start.location)
            }
            c.append(d)
        }
        if let divisor, c[3] != 0 || c[4] != 0 {
            return .quotient(
                QuotientAffine(
                    divisor: divisor, row: c[0], column: c[1], rowQuotient: c[3], columnQuotient: c[4], constant: c[2],
                    isEquality: isZero))
        }
        return isZero
            ? .affineZero(rowCoefficient: c[0], columnCoefficient: c[1], constant: c[2])
            : .affineNonNegative(rowCoefficient: c[0], columnCoefficient: c[1], constant: c[2])
    }

    /// An affine expression of `i`, `j` and the quotients `i/m`, `j/m`: `[-] term ((+|-) term)*`
    /// with terms `N`, `N*i`, `i`, `i/m`, `N*(i/m)`; every quotient in one atom has the same
    /// divisor `m > 0`. Returns the coefficients of `i`, `j`, the constant, `i/m` and `j/m`.
    mutating func parseAffine(divisor: inout Int?) throws(Diagnostic) -> [Int] {
        var sums = [0, 0, 0, 0, 0]
        var negative = false
        if isSymbol("-") {
            negative = true
            advance()
        }
        while true {
            let termToken = current
            var coefficient = 1
            var slot = 2
            if current.kind == .integer {
                coefficient = try integer("a coefficient")
                if isSymbol("*") {
                    advance()
                    slot = try affineTerm(divisor: &divisor)
                }
            } else {
                slot = try affineTerm(divisor: &divisor)
            }
            if negative { coefficient = -coefficient }
            let (sum, overflow) = sums[slot].addingReportingOverflow(coefficient)
            guard !overflow, sum != Int.min else {
                throw Diagnostic("the predicate's coefficients are too large", at: termToken.location)
            }
            sums[slot] = sum
            if isSymbol("+") {
                negative = false
            } else if isSymbol("-") {
                negative = true
            } else {
                return sums
            }
            advance()
        }
    }

    /// `i` (slot 0), `j` (slot 1), `i/m` (slot 3), `j/m` (slot 4), or `(i/m)`, `(j/m)`.
    mutating func affineTerm(divisor: inout Int?) throws(Diagnostic) -> Int {
        let parenthesized = isSymbol("(")
        if parenthesized { advance() }
        var slot = try affineVariable()
        if isSymbol("/") {
            advance()
            let location = current.location
            let m = try integer("a divisor")
            guard m > 0 else {
                throw Diagnostic("division by zero in the mask predicate; divide by a positive integer", at: location)
            }
            if let d = divisor, d != m {
                throw Diagnostic(
                    "a mask condition divides by one number only, found both \(d) and \(m); split it into separate conditions",
                    at: location)
            }
            divisor = m
            slot += 3
        } else if parenthesized {
            throw error("expected '/' and a divisor in '(i/m)', found \(current.quoted)")
        }
        if parenthesized { try expectSymbol(")", "')' after the quotient") }
        return slot
    }

    /// `i` (slot 0) or `j` (slot 1).
    mutating func affineVariable() throws(Diagnostic) -> Int {
        if isKeyword("i") || isKeyword("j") {
            defer { advance() }
            return current.text == "i" ? 0 : 1
        }
        throw error("expected 'i' (row), 'j' (column) or an integer in the mask predicate, found \(current.quoted)")
    }
}
