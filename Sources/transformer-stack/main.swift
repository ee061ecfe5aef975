// Builds a stack of L Llama-style decoder layers with the Swift graph API, then lowers, selects
// and fuses it, printing the time of each stage for L = 1, 8, 32 (or the L values given):
//
//     swift run -c release transformer-stack [L ...] [--seq S]
//
// This is the example of using blockc as a library, and the scaling benchmark of issue
// "fusion": the time should grow linearly in L.
import BlockIR
import Dispatch
import Foundation
import Fusion
import Graph

func layer(_ b: inout GraphBuilder, _ x: NodeID, index l: Int, s: Int, h: Int, dh: Int, f: Int) throws -> NodeID {
    let d = h * dh
    func weight(_ name: String, _ shape: [Int]) throws -> NodeID { try b.input("\(name)_\(l)", shape) }
    let xa = try b.rmsNorm(x, gamma: weight("g_attn", [d]))
    func heads(_ w: NodeID) throws -> NodeID {
        try b.transpose(b.reshape(b.matmul(xa, w), [s, h, dh]), permutation: [1, 0, 2])
    }
    let q = try heads(weight("Wq", [d, d]))
    let k = try heads(weight("Wk", [d, d]))
    let v = try heads(weight("Wv", [d, d]))
    let scores = try b.mul(b.matmul(q, k, transposeB: true), b.constant(1 / Float(dh).squareRoot()))
    let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
    let p = try b.softmax(b.mask(scores, causal, fill: -.infinity), axis: -1)
    let a = try b.reshape(b.transpose(b.matmul(p, v), permutation: [1, 0, 2]), [s, d])
    let x1 = try b.add(x, b.matmul(a, weight("Wo", [d, d])))
    let xf = try b.rmsNorm(x1, gamma: weight("g_ffn", [d]))
    let g = try b.mul(b.unary(.silu, b.matmul(xf, weight("W1", [d, f]))), b.matmul(xf, weight("W3", [d, f])))
    return try b.add(x1, b.matmul(g, weight("W2", [f, d])))
}

func stack(layers: Int, s: Int) throws -> Graph {
    var b = GraphBuilder(name: "transformer_stack")
    var x = try b.input("X", [s, 1024])
    for l in 0..<layers { x = try layer(&b, x, index: l, s: s, h: 16, dh: 64, f: 2816) }
    try b.output(x, name: "Y")
    return try b.build()
}

func seconds(_ start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

func run() throws {
    var args = Array(CommandLine.arguments.dropFirst())
    var seq = 1024
    if let i = args.firstIndex(of: "--seq"), i + 1 < args.count, let s = Int(args[i + 1]) {
        seq = s
        args.removeSubrange(i...(i + 1))
    }
    let counts = args.compactMap(Int.init)
    print("L      build s  lower s   fuse s   total s  kernels  steps")
    for l in counts.isEmpty ? [1, 8, 32] : counts {
        let t0 = DispatchTime.now()
        let graph = try stack(layers: l, s: seq)
        let t1 = DispatchTime.now()
        let program = try Lowering.lower(graph)
        let t2 = DispatchTime.now()
        let result = Fusion.fuse(program)
        let fuse = seconds(t2)
        let line = [
            String(l).padding(toLength: 5, withPad: " ", startingAt: 0),
            String(
                format: "%8.3f %8.3f %8.3f %9.3f", seconds(t0) - seconds(t1), seconds(t1) - seconds(t2), fuse,
                seconds(t0)),
            String(format: "%8d %6d", result.program.kernels.count, result.trace.count),
        ]
        print(line.joined(separator: " "))
    }
}

do {
    try run()
} catch {
    print("error: \(error)")
    exit(1)
}
