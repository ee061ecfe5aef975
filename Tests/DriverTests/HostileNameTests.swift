import BlockTestSupport
import Foundation
import XCTest

/// Graphs whose names are C and C++ keywords, standard macros, types, libc functions, blockc's
/// runtime helpers and temporaries, CUDA builtins, and names that collide once derived (graph
/// `a` with tensor `a_k0`, `argc` in a graph named `main`): the generated C compiles and matches
/// the interpreter (`blockc verify`, fused and unfused, so every intermediate tensor is a named
/// C pointer once), and the CUDA compiles with nvcc (when `BLOCKC_NVCC` or `.venv-cuda` has it).
final class HostileNameTests: XCTestCase {
    /// Names no header or runtime may claim from a user.
    static let keywords = [
        "int", "for", "if", "while", "return", "static", "restrict", "const", "float", "void", "char", "long",
        "double", "struct", "union", "typedef", "sizeof", "goto", "switch", "case", "default", "break", "continue",
        "do", "else", "enum", "extern", "register", "signed", "unsigned", "short", "volatile", "auto", "inline",
        "_Bool", "_Complex", "_Alignas", "_Static_assert", "_Noreturn", "_Thread_local", "_Generic", "_Atomic",
        "asm", "typeof", "class", "new", "delete", "this", "template", "typename", "namespace", "operator", "bool",
        "nullptr", "and", "or", "not", "xor", "private", "public", "virtual", "throw", "try", "catch",
        "__restrict__", "__global__", "__shared__", "__device__", "__forceinline__", "__launch_bounds__",
    ]
    static let macros = [
        "HUGE_VAL", "EOF", "M_PI", "NULL", "errno", "stdin", "stdout", "stderr", "INFINITY", "NAN", "assert",
        "offsetof", "RAND_MAX", "EXIT_FAILURE", "BUFSIZ", "CHAR_BIT", "INT_MAX", "isnan", "isinf", "signbit",
        "fpclassify", "EINVAL", "linux", "unix", "__LINE__", "__FILE__", "__cplusplus", "__CUDA_ARCH__",
        "_OPENMP", "__AVX512F__", "BLK_CHECK", "restrict_", "I", "complex",
    ]
    static let types = [
        "size_t", "int32_t", "uint32_t", "int64_t", "ptrdiff_t", "va_list", "FILE", "cudaError_t", "dim3",
        "float4", "__m512", "wchar_t", "max_align_t",
    ]
    static let functions = [
        "printf", "malloc", "free", "exp", "expf", "memcpy", "memset", "calloc", "qsort", "atoi", "abort", "fopen",
        "fabsf", "fmaf", "tanhf", "posix_memalign", "omp_get_wtime", "cudaMalloc", "cudaFree", "cudaMemcpy",
        "cudaMemset", "cudaGetLastError", "cudaFuncSetAttribute", "__syncthreads", "__shfl_xor_sync", "atomicAdd",
    ]
    static let runtime = [
        "blk_alloc", "blk_alloc_zeroed", "blk_gemm", "blk_pack", "blk_floordiv", "blk_imin", "blk_imax",
        "blk_extent", "blk_maxf", "blk_minf", "blk_expf", "blk_tanhf", "blk_sigmoidf", "blk_siluf", "blk_geluf",
        "blk_warp_sum", "blk_warp_max", "blk_smem", "blk_scratch0", "blk_arena", "blk_sum_contig",
        "blk_max_rows", "blk_sum_lanes", "blk_of_lanes16", "blk_device_zeroed", "blk_u_a", "blk_t_x", "blk_g_x",
        "blk_d_x", "BLK_U_a_H",
    ]
    static let temporaries = [
        "v0", "v12", "s3", "e4_0", "B0", "L20", "t0", "f_", "e_", "status_", "g_x", "d_x", "x_", "dir", "reps", "times",
        "shape", "ms", "start", "stop", "devices", "status", "npy_read", "npy_write", "cmp_double", "main", "argv",
        "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "i", "j", "k", "b0",
    ]

    /// A graph over square `[D, D]` tensors that uses every name: the first three are inputs, each
    /// later one combines the one before with an earlier one (elementwise, matmul, softmax), and
    /// the last two are outputs.
    static func graph(named name: String, dim: String, tensors: [String]) -> String {
        var text = "graph \(name)\ndim \(dim) = 6\n"
        for t in tensors.prefix(3) { text += "input \(t): [\(dim), \(dim)]\n" }
        for k in 3..<tensors.count {
            let prev = tensors[k - 1]
            let other = tensors[(k * 5 + 1) % (k - 1)]
            let expr: String
            switch k % 6 {
            case 0: expr = "\(prev) * \(other) + 1"
            case 1: expr = "tanh(\(prev)) - \(other)"
            case 2: expr = "matmul(\(prev), \(other)) * 0.25"
            case 3: expr = "softmax(\(prev), axis=-1)"
            case 4: expr = "matmul(\(prev), \(other), transpose_b=true) * 0.5"
            default: expr = "exp(tanh(\(prev))) + \(other)"
            }
            text += "\(tensors[k]) = \(expr)\n"
        }
        for t in tensors.suffix(2) { text += "output \(t)\n" }
        return text
    }

    /// The graphs (file stem, graph name, dimension name, tensor names): a few dozen tensors each.
    static let specs: [(file: String, name: String, dim: String, tensors: [String])] = [
        ("main", "main", "NULL", ["argc", "argv"] + keywords),
        ("a", "a", "size_t", ["a_k0", "a_k1", "a_device", "a", "A"] + macros),
        ("blk_gemm", "blk_gemm", "EOF", ["x"] + types + functions),
        ("huge_val", "HUGE_VAL", "M_PI", runtime + temporaries),
    ]

    /// The graphs' texts; `limit` keeps the first tensors only.
    static func cases(limit: Int = .max) -> [(file: String, text: String)] {
        specs.map { s in (s.file, graph(named: s.name, dim: s.dim, tensors: Array(s.tensors.prefix(limit)))) }
    }

    func testEveryNameVerifiesFusedAndUnfused() throws {
        let dir = CLI.temporaryDirectory("hostile-names")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Unfused, every tensor is a C pointer of its own; fusion (slow in a debug build on
        // dozens of tensors) runs on each graph's first ten names.
        var jobs: [(label: String, path: String, text: String, args: [String])] = []
        for (file, text) in Self.cases() { jobs.append((file, "\(dir)/\(file).graph", text, ["--no-fusion"])) }
        for (file, text) in Self.cases(limit: 10) {
            jobs.append((file + " fused", "\(dir)/\(file)_10.graph", text, []))
        }
        let failures = LockedStrings()
        let all = jobs
        DispatchQueue.concurrentPerform(iterations: all.count) { k in
            let job = all[k]
            do {
                try job.text.write(toFile: job.path, atomically: true, encoding: .utf8)
            } catch {
                return failures.append("\(job.label): \(error)")
            }
            let result = CLI.blockc(["verify", job.path, "--seed", "3"] + job.args)
            if result.status != 0 || !result.stdout.contains("max abs error") {
                failures.append("\(job.label): \(result.stdout)\(result.stderr)\n\(job.text)")
            }
        }
        XCTAssertEqual(failures.values, [])
    }

    func testHeaderKeepsTheUserNames() throws {
        let dir = CLI.temporaryDirectory("hostile-header")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (file, text) = Self.cases()[1]
        try text.write(toFile: "\(dir)/\(file).graph", atomically: true, encoding: .utf8)
        let result = CLI.blockc(["emit-c", "\(dir)/\(file).graph", "-o", "\(dir)/out.c"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let header = try String(contentsOfFile: "\(dir)/out.h", encoding: .utf8)
        XCTAssertTrue(header.contains("void blk_u_a(const float *restrict blk_t_a_k0, "), header)
        XCTAssertTrue(header.contains("/*   blk_t_a_device: input 'a_device', f32[6, 6], 36 floats */"), header)
        XCTAssertTrue(header.contains("#ifndef BLK_U_a_H"), header)
    }

    func testEveryNameCompilesAsCUDA() throws {
        let nvcc = try CudaTests.nvcc()
        let dir = CLI.temporaryDirectory("hostile-cuda")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let failures = LockedStrings()
        let cases = Self.cases()
        DispatchQueue.concurrentPerform(iterations: cases.count) { k in
            let (file, text) = cases[k]
            let bundle = "\(dir)/\(file)"
            do {
                try text.write(toFile: bundle + ".graph", atomically: true, encoding: .utf8)
            } catch {
                return failures.append("\(file): \(error)")
            }
            let emitted = CLI.blockc(["emit-cuda", bundle + ".graph", "--bundle", bundle])
            guard emitted.status == 0 else { return failures.append("\(file): emit-cuda: \(emitted.stderr)") }
            let stem = file == "huge_val" ? "HUGE_VAL" : file
            // The kernels, the launchers and the harness (whose main holds every tensor).
            let compiled = CLI.run(nvcc, ["-arch=sm_90", "-c", "-o", bundle + "/kernels.o", bundle + "/\(stem).cu"])
            let harness = CLI.run(nvcc, ["-arch=sm_90", "-c", "-o", bundle + "/harness.o", bundle + "/harness.cu"])
            for (what, r) in [("kernels", compiled), ("harness", harness)] where r.status != 0 {
                failures.append("\(file) \(what): nvcc failed:\n\(r.stdout)\(r.stderr)\n\(text)")
            }
        }
        XCTAssertEqual(failures.values, [])
    }

    /// Index variables of a hand-written `.block` file named like macros, libc functions and the
    /// emitter's own temporaries: the C and the CUDA use `blk_v_` names for them and still match.
    func testIndexVariablesNamedLikeMacros() throws {
        let dir = CLI.temporaryDirectory("index-names")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
            program idx

            tensor X: f32[64,96] @global input
            tensor Y: f32[64,96] @global output

            kernel k grid(HUGE_VAL < 2, M_PI < 2) {
              for INT32_MAX in 0 ..< 2 {
                for v1 in 0 ..< 3 {
                  %0 = load X[HUGE_VAL * 32 +: 32, M_PI * 48 + INT32_MAX * 24 + v1 * 8 +: 8] : f32[32,8] @local
                  %1 = exp %0 : f32[32,8] @local
                  store %1 -> Y[HUGE_VAL * 32 +: 32, M_PI * 48 + INT32_MAX * 24 + v1 * 8 +: 8]
                  yield
                }
                yield
              }
            }

            """
        try text.write(toFile: dir + "/idx.block", atomically: true, encoding: .utf8)
        let verify = CLI.blockc(["verify", "--no-fusion", dir + "/idx.block"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let c = CLI.blockc(["emit-c", "--no-fusion", dir + "/idx.block"])
        for name in ["HUGE_VAL", "M_PI", "INT32_MAX", "v1"] { XCTAssertTrue(c.stdout.contains("blk_v_\(name)"), name) }
    }
}
