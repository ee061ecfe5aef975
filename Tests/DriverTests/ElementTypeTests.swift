import BlockTestSupport
import Foundation
import XCTest

/// Element types end to end: f16 and bf16 programs compiled to C match the interpreter (the
/// tolerance of `verify`: one unit in the last place of the output type at max |reference|), their
/// CUDA compiles for sm_80 and sm_90, casts between every type run, the report counts each
/// tensor's bytes, and the languages reject implicit mixing and arithmetic on bool.
final class ElementTypeTests: XCTestCase {
    /// The bf16 examples and, written from them, their f16 twins, at reduced odd sizes.
    static let halfPrecision: [(example: String, dims: String)] = [
        ("attention_bf16", "BH=2,N=200,d=40"), ("rmsnorm_swiglu_bf16", "M=100,d=200,h=300"),
    ]

    /// The example's text with every bf16 tensor made `type`.
    static func variant(_ example: String, _ type: String, in dir: String) throws -> String {
        let text = try String(contentsOfFile: "\(CLI.packageRoot)/Examples/\(example).graph", encoding: .utf8)
        let name = example.replacingOccurrences(of: "bf16", with: type)
        let path = "\(dir)/\(name).graph"
        try text.replacingOccurrences(of: "bf16", with: type).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testHalfPrecisionCompiledMatchesTheInterpreter() throws {
        let dir = CLI.temporaryDirectory("half")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (example, dims) in Self.halfPrecision {
            for type in ["bf16", "f16"] {
                let path = try Self.variant(example, type, in: dir)
                let verify = CLI.blockc(["verify", path, "--dim", dims, "--seed", "4"])
                XCTAssertEqual(verify.status, 0, "\(example) as \(type): \(verify.stdout)\(verify.stderr)")
                XCTAssertTrue(verify.stdout.contains(" ok"), verify.stdout)
                // The fused kernel converts every load and store; no tensor is read in place.
                let c = CLI.blockc(["emit-c", path, "--dim", dims])
                XCTAssertTrue(c.stdout.contains(type == "bf16" ? "blk_bf16_to_f32(" : "(float)"), type)
                XCTAssertTrue(c.stdout.contains(type == "bf16" ? "blk_f32_to_bf16(" : "(_Float16)("), type)
            }
        }
    }

    func testHalfPrecisionCUDACompiles() throws {
        let nvcc = try CudaTests.nvcc()
        let dir = CLI.temporaryDirectory("half-cuda")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (example, dims) in Self.halfPrecision {
            for type in ["bf16", "f16"] {
                let path = try Self.variant(example, type, in: dir)
                for arch in ["sm_80", "sm_90"] {
                    let stem = "\(dir)/\(example)_\(type)_\(arch)"
                    let emitted = CLI.blockc(["emit-cuda", path, "--dim", dims, "--target", arch, "-o", stem + ".cu"])
                    XCTAssertEqual(emitted.status, 0, emitted.stderr)
                    let compiled = CLI.run(
                        nvcc, ["-arch=\(arch)", "-cubin", "-Xptxas", "-v", "-o", stem + ".cubin", stem + ".cu"])
                    XCTAssertEqual(compiled.status, 0, "\(example) \(type) \(arch): \(compiled.stderr)")
                    XCTAssertFalse(
                        CudaTests.parsePtxas(compiled.stdout + compiled.stderr).contains { $0.spillStores > 0 },
                        "\(example) \(type) \(arch) spills")
                }
            }
        }
    }

    /// Casts between every type, in C (under the sanitizers) and in the interpreter, and `.npy`
    /// files in each type's dtype.
    func testCastsBetweenEveryType() throws {
        let dir = CLI.temporaryDirectory("casts")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graph = """
            graph casts
            dim N = 50
            input A: i32[N, 24]
            input M: bool[N, 24]
            input X: bf16[N, 24]
            input H: f16[N, 24]
            Y = cast(A, f32) * cast(M, f32) + cast(X, f32) - cast(H, f32)
            Z = cast(Y * 0.5, i32)
            B = cast(Y, bool)
            Xb = cast(Y, bf16)
            Hh = cast(Y, f16)
            output Z, B, Xb, Hh, Y

            """
        try graph.write(toFile: dir + "/casts.graph", atomically: true, encoding: .utf8)
        let verify = CLI.blockc(["verify", "--sanitize", dir + "/casts.graph"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        for name in ["Z", "B", "Xb", "Hh", "Y"] { XCTAssertTrue(verify.stdout.contains("\(name): max abs error")) }
        let run = CLI.blockc(["run", dir + "/casts.graph", "--save-inputs", "--output-dir", dir + "/out"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Z: i32[50, 24]"), run.stdout)
        let dtypes = ["A": "<i4", "M": "|b1", "X": "<u2", "H": "<f2", "Z": "<i4", "B": "|b1", "Xb": "<u2", "Y": "<f4"]
        for (name, dtype) in dtypes.sorted(by: { $0.key < $1.key }) {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/\(name).npy"))) ?? Data()
            XCTAssertTrue(String(decoding: bytes.prefix(80), as: UTF8.self).contains("'descr': '\(dtype)'"), name)
        }
        // The same run from the saved files: an input of another dtype is refused.
        let wrong = CLI.blockc([
            "run", dir + "/casts.graph", "--input", "A=\(dir)/out/M.npy",
        ])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(
            wrong.stderr.contains("input 'A' holds bool ('|b1'), the program expects i32 ('<i4')"), wrong.stderr)
    }

    /// bf16 tensors halve the global bytes of the fused programs.
    func testReportCountsElementBytes() throws {
        for (f32, bf16) in [("attention", "attention_bf16"), ("rmsnorm_swiglu", "rmsnorm_swiglu_bf16")] {
            let a = CLI.blockc(["report", "--json", "Examples/\(f32).graph"])
            let b = CLI.blockc(["report", "--json", "Examples/\(bf16).graph"])
            XCTAssertEqual(a.status, 0, a.stderr)
            XCTAssertEqual(b.status, 0, b.stderr)
            func total(_ json: String, _ key: String) -> Int {
                guard let data = json.data(using: .utf8),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let total = object["total"] as? [String: Any], let n = total[key] as? Int
                else { return -1 }
                return n
            }
            for key in ["global_read_bytes", "global_write_bytes"] {
                XCTAssertGreaterThan(total(a.stdout, key), 0, a.stdout)
                XCTAssertEqual(total(b.stdout, key) * 2, total(a.stdout, key), "\(bf16) \(key)")
            }
        }
    }

    /// No implicit mixing, no arithmetic on bool, and located messages that say what to write.
    func testTypeErrorsAreLocated() throws {
        let dir = CLI.temporaryDirectory("typeerrors")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(String, String)] = [
            ("input A: bf16[4, 4]\ninput B: [4, 4]\nC = A + B\noutput C", "'A' is bf16 but 'B' is f32"),
            ("input M: bool[4, 4]\nC = M * 2\noutput C", "there is no arithmetic on bool"),
            ("input A: i32[4, 4]\nC = exp(A)\noutput C", "exp is not defined on i32"),
            ("input A: f64[4, 4]\noutput A", "unknown element type 'f64'"),
            ("input A: [4, 4]\nC = cast(A, half)\noutput C", "cast takes an element type"),
        ]
        for (k, (body, fragment)) in cases.enumerated() {
            let path = "\(dir)/t\(k).graph"
            try ("graph t\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let result = CLI.blockc(["check", path])
            XCTAssertEqual(result.status, 1, body)
            XCTAssertTrue(result.stderr.contains(fragment), "\(body): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("\(path):"), result.stderr)
        }
        // Block programs: tensors carry element types, blocks are f32.
        let block = """
            program p

            tensor X: bf16[64,64] @global input
            tensor Y: i32[64,64] @global output

            kernel k grid(i < 1) {
              %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              store %0 -> Y[0 +: 64, 0 +: 64]
            }

            """
        try block.write(toFile: dir + "/p.block", atomically: true, encoding: .utf8)
        let printed = CLI.blockc(["lower", dir + "/p.block"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertEqual(printed.stdout, block)
        try block.replacingOccurrences(of: ": f32[64,64] @local", with: ": bf16[64,64] @local")
            .write(toFile: dir + "/q.block", atomically: true, encoding: .utf8)
        let bad = CLI.blockc(["check", dir + "/q.block"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("blocks compute in f32"), bad.stderr)
    }
}
