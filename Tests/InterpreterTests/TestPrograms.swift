import BlockIR

/// Hand-built block programs shared by the interpreter and report tests.
enum TestPrograms {
    static func local(_ shape: [Int]) -> BlockType { BlockType(shape, .local) }

    /// `C[M, N] = A[M, K] · B[K, N]` tiled by `tile` with a loop over `k`:
    ///
    /// ```
    /// kernel mm grid(i < ⌈M/t⌉, j < ⌈N/t⌉) {
    ///   %0 = fill 0.0
    ///   %1 = for k in 0 ..< ⌈K/t⌉ iter(%2 = %0) {
    ///     %3 = load A[i * t +: t, k * t +: t]; %4 = load B[k * t +: t, j * t +: t]
    ///     %5 = dot %3, %4; %6 = add %2, %5; yield %6
    ///   }
    ///   store %1 -> C[i * t +: t, j * t +: t]
    /// }
    /// ```
    static func tiledMatmul(m: Int, k: Int, n: Int, tile t: Int) -> Program {
        let tensors = [
            GlobalTensor(name: "A", shape: [m, k], role: .input),
            GlobalTensor(name: "B", shape: [k, n], role: .input),
            GlobalTensor(name: "C", shape: [m, n], role: .output),
        ]
        let blocks = { (size: Int) in (size + t - 1) / t }
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), local([t, t]))
        let i = IndexExpr.v("i")
        let j = IndexExpr.v("j")
        let kk = IndexExpr.v("k")
        let acc = b.loop(
            IndexVar("k"), from: .constant(0), to: .constant(blocks(k)), carrying: [zero], types: [local([t, t])]
        ) { body, carried in
            let x = body.emit(
                .load(TensorID(0), [.slice(start: .mul(i, t), size: t), .slice(start: .mul(kk, t), size: t)]),
                local([t, t]))
            let y = body.emit(
                .load(TensorID(1), [.slice(start: .mul(kk, t), size: t), .slice(start: .mul(j, t), size: t)]),
                local([t, t]))
            let d = body.emit(.dot(x, y, transposeA: false, transposeB: false), local([t, t]))
            return [body.emit(.binary(.add, carried[0], d), local([t, t]))]
        }
        b.emit(.store(acc[0], TensorID(2), [.slice(start: .mul(i, t), size: t), .slice(start: .mul(j, t), size: t)]))
        let kernel = Kernel(
            name: "mm", grid: [GridAxis(IndexVar("i"), blocks(m)), GridAxis(IndexVar("j"), blocks(n))],
            body: b.instructions)
        return Program(name: "matmul", tensors: tensors, kernels: [kernel])
    }
}
