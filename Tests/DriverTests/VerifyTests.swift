import BlockTestSupport
import Foundation
import XCTest

/// `blockc verify` on every example at odd shapes and block sizes: the generated C, compiled with
/// gcc and run, matches the interpreter on the unfused program's semantics (the tolerance is
/// `verify`'s: 1e-4 · max(1, max |reference|)).
final class VerifyTests: XCTestCase {
    static let cases: [(String, String, String?)] = [
        ("attention", "BH=1,N=1000,d=80", nil),
        ("attention", "BH=2,N=300,d=40", "i=32,j=48,k=16"),
        ("attention_causal", "BH=1,N=1000,d=80", nil),
        ("attention_causal", "BH=2,N=200,d=24", "i=16,j=32,k=8"),
        ("attention_sliding_window", "BH=1,N=1000,d=64,W=100", nil),
        ("attention_documents", "BH=1,N=1000,d=32", nil),
        // Token ids gather rows of the table (random ids lie in 0 ..< V); the gather fuses into the norm and matmul.
        ("embedding_rmsnorm", "T=77,V=101,D=96,F=45", nil),
        ("embedding_rmsnorm", "T=50,V=30,D=40,F=24", "i=16,j=8,k=16"),
        // Grouped-query attention: 4-D inputs viewed as 5-D groups (no copy kernels).
        ("attention_gqa", "B=2,Hkv=3,g=2,H=6,N=77,d=20", nil),
        ("attention_gqa", "N=300,d=24", "i=32,j=48,k=16"),
        // One query row per head: the size-1 axis is a point in every kernel.
        ("decode_attention", "BH=3,N=301,d=24", nil),
        ("decode_attention", "BH=2,N=100,d=40", "i=16,j=32,k=8"),
        // A random bool mask (structured masks in testBlockMaskExampleOnStructuredMasks).
        ("attention_block_mask", "BH=2,N=300,d=40", nil),
        ("attention_block_mask", "BH=1,N=200,d=24", "i=16,j=32,k=8"),
        // A random block mask: 64-blocks of the mask at the default blocks (B read directly), and
        // 15-blocks at 15-blocks (odd sizes); 30-blocks at 64-blocks (not aligned) are expanded in the kernels.
        ("attention_block_mask_blocks", "BH=2,N=320,d=40,bs=64", nil),
        ("attention_block_mask_blocks", "BH=1,N=105,d=24,bs=15", "i=15,j=15,k=15"),
        ("attention_block_mask_blocks", "BH=1,N=300,d=24,bs=30", nil),
        // Random valid offsets (RandomInputs: 0, sorted, N); chosen ones in testBlockMaskOnStructuredMasks.
        ("attention_packed", "BH=2,N=300,d=40,D=4", nil),
        ("attention_packed", "BH=1,N=200,d=24,D=3", "i=16,j=32,k=8"),
        // Random valid lengths of at most max_len (RandomInputs); chosen ones in JaggedTests.
        ("attention_jagged", "H=2,T=300,d=40,B=5,max_len=100", nil),
        ("attention_jagged", "H=1,T=200,d=24,B=4,max_len=70", "i=16,j=32,k=8"),
        ("attention_alibi", "B=1,H=3,N=300,d=24", nil),
        ("attention_alibi", "B=2,H=2,N=200,d=24", "i=16,j=32,k=8"),
        // Reverse scan over keys carried in the key loop, which walks from the diagonal down.
        ("stick_breaking_attention", "BH=1,N=300,d=24", nil),
        ("stick_breaking_attention", "BH=2,N=300,d=24", "i=16,j=32,k=8"),
        // Chunks of 100 cross the 64-blocks; chunks of 37 cross the 16-blocks and are shorter than them.
        ("attention_chunked", "BH=2,N=700,C=100,d=24", nil),
        ("attention_chunked", "BH=1,N=333,C=37,d=16", "i=16,j=16,k=16"),
        // RoPE's halves (16 of d = 32) and DCA's chunks (75) cross the blocks; N = 300 leaves partial blocks.
        ("attention_rope", "B=1,H=2,N=300,d=32", nil),
        ("attention_rope", "B=1,H=2,N=300,d=32", "i=16,j=32,k=8"),
        ("attention_dca", "B=1,H=2,C=75,NC=4,d=32", nil),
        ("attention_dca", "B=1,H=2,C=75,NC=4,d=32", "i=16,j=32,k=8"),
        ("layernorm_matmul", "M=300,K=200,N=100", nil),
        ("layernorm_matmul", "M=70,K=90,N=50", "i=16,j=32,k=16"),
        ("rmsnorm_swiglu", "M=100,d=200,h=300", nil),
        // Streams 1.03 MiB of weights per row block: the schedule coarsens it to 128-row blocks, the last partial.
        ("rmsnorm_swiglu", "M=1000,d=256,h=352", nil),
        ("transformer_layer", "S=100,H=2,dh=40,F=200", nil),
        // GQA prefill: 4 query heads over 2 K/V heads, S = 77 leaves partial blocks.
        ("llama_layer_prefill", "S=77,D=128,H=4,Hkv=2,F=200", nil),
        // Decode: the key loop (16 blocks of 1001 keys, the last partial) splits into 4 chunks (R15).
        ("llama_layer_decode", "D=128,H=4,Hkv=2,N=1001,F=200", nil),
        ("llama_layer_decode", "D=96,H=4,Hkv=2,N=333,F=200", "i=16,j=32,k=16"),
        // bf16 tensors: the tolerance is one bf16 unit in the last place at max |reference|.
        ("attention_bf16", "BH=2,N=200,d=40", nil),
        ("rmsnorm_swiglu_bf16", "M=100,d=200,h=300", nil),
    ]

    func testGeneratedCMatchesTheInterpreter() {
        Examples.assertCovered(by: Self.cases.map(\.0), in: "VerifyTests.cases")
        for (example, dims, blocks) in Self.cases {
            var args = ["verify", "Examples/\(example).graph", "--dim", dims, "--seed", "5"]
            if let blocks { args += ["--block", blocks] }
            let result = CLI.blockc(args)
            XCTAssertEqual(result.status, 0, "\(example) \(dims) \(blocks ?? ""): \(result.stdout)\(result.stderr)")
            XCTAssertTrue(result.stdout.contains("max abs error"), result.stdout)
        }
    }

    /// The compiled C of Examples/attention_block_mask.graph on structured masks given with
    /// `--input` (banded, block-diagonal, random 64-blocks, and one whose key block 1 is masked
    /// for every query while V holds NaN there: the C must skip the block, as the interpreter
    /// does, or NaN reaches the output), fused and unfused, once under the sanitizers.
    func testBlockMaskOnStructuredMasks() throws {
        let dir = CLI.temporaryDirectory("blockmaskc")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import numpy as np, sys
            n, bh, d = 300, 2, 40
            i = np.arange(n)[:, None]; j = np.arange(n)[None, :]
            keep = np.random.default_rng(5).random((5, 5)) < 0.4
            masks = {"banded": abs(i - j) < 70, "documents": i // 110 == j // 110,
                     "blocks": keep[i // 64, j // 64] | (i == j),
                     "hole": ((j < 64) | (j >= 128)) & ((abs(i - j) < 40) | (j == 0))}
            for name, m in masks.items():
                np.save(f"{sys.argv[1]}/{name}.npy", m.reshape(1, n, n))
            v = np.random.default_rng(6).standard_normal((bh, n, d)).astype(np.float32)
            v[:, 64:128, :] = np.nan
            np.save(f"{sys.argv[1]}/V_nan.npy", v)
            np.save(f"{sys.argv[1]}/offsets.npy", np.array([0, 70, 70, 201, 300], dtype=np.int32))
            """
        let made = CLI.run("/usr/bin/env", ["python3", "-c", script, dir])
        XCTAssertEqual(made.status, 0, made.stderr)
        let base = ["verify", "Examples/attention_block_mask.graph", "--dim", "BH=2,N=300,d=40", "--seed", "2"]
        for mask in ["banded", "documents", "blocks"] {
            for extra in [[], ["--no-fusion"], ["--block", "i=16,j=32,k=8"]] {
                let result = CLI.blockc(base + ["--input", "M=\(dir)/\(mask).npy"] + extra)
                XCTAssertEqual(result.status, 0, "\(mask) \(extra): \(result.stdout)\(result.stderr)")
                XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
            }
        }
        // Block-diagonal documents leave whole 64-blocks kept: the all-bit path, under the sanitizers.
        let documents = CLI.blockc(base + ["--input", "M=\(dir)/documents.npy", "--sanitize"])
        XCTAssertEqual(documents.status, 0, "documents --sanitize: \(documents.stdout)\(documents.stderr)")
        let hole = CLI.blockc(
            base + [
                "--input", "M=\(dir)/hole.npy", "--input", "V=\(dir)/V_nan.npy", "--sanitize", "-o", dir + "/r.txt",
            ])
        XCTAssertEqual(hole.status, 0, hole.stdout + hole.stderr)
        for extra in [["--sanitize"], ["--no-fusion"], ["--block", "i=16,j=32,k=8"]] {
            let packed = CLI.blockc(
                [
                    "verify", "Examples/attention_packed.graph", "--dim", "BH=2,N=300,d=40,D=4", "--input",
                    "offsets=\(dir)/offsets.npy",
                ] + extra)
            XCTAssertEqual(packed.status, 0, "packed \(extra): \(packed.stdout)\(packed.stderr)")
        }
        let report = try String(contentsOfFile: dir + "/r.txt", encoding: .utf8)
        XCTAssertTrue(report.hasPrefix("O: max abs error") && report.contains(" ok"), report)
        XCTAssertFalse(report.contains("nan"), report)
    }

    /// Offsets that are not non-decreasing or exceed N: the compiled harness (`blockc bench`, which
    /// runs no interpreter) stops with the interpreter's message. With the check gone (the
    /// program's `offsets into N` removed from its text), the compiled C under the sanitizers
    /// reads nothing out of bounds on the same offsets and matches the interpreter: nothing is
    /// read through the offsets, and the loop's run-time bounds only narrow its range.
    func testBadOffsetsAreARunTimeError() throws {
        let dir = CLI.temporaryDirectory("badoffsets")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import numpy as np, sys
            np.save(f"{sys.argv[1]}/down.npy", np.array([0, 70, 10, 80, 90], dtype=np.int32))
            np.save(f"{sys.argv[1]}/past.npy", np.array([0, 20, 40, 60, 95], dtype=np.int32))
            """
        let made = CLI.run("/usr/bin/env", ["python3", "-c", script, dir])
        XCTAssertEqual(made.status, 0, made.stderr)
        let dims = ["--dim", "BH=1,N=90,d=8,D=4"]
        let messages = ["down": "element 2 (10) is below element 1 (70)", "past": "element 4 is 95, outside 0 ... 90"]
        for (name, message) in messages.sorted(by: { $0.key < $1.key }) {
            let bench = CLI.blockc(
                [
                    "bench", "Examples/attention_packed.graph", "--input", "offsets=\(dir)/\(name).npy", "--reps", "1",
                    "--peak", "1",
                ] + dims)
            XCTAssertNotEqual(bench.status, 0, name)
            XCTAssertTrue(bench.stderr.contains("error: input 'offsets' holds segment offsets"), bench.stderr)
            XCTAssertTrue(bench.stderr.contains(message), bench.stderr)
        }
        let fused = CLI.blockc(["fuse", "Examples/attention_packed.graph"] + dims)
        XCTAssertEqual(fused.status, 0, fused.stderr)
        XCTAssertTrue(fused.stdout.contains(" offsets into 90"), fused.stdout)
        let unchecked = fused.stdout.replacingOccurrences(of: " offsets into 90", with: "")
        try unchecked.write(toFile: dir + "/p.block", atomically: true, encoding: .utf8)
        for name in messages.keys.sorted() {
            let result = CLI.blockc(
                ["verify", dir + "/p.block", "--sanitize", "--input", "offsets=\(dir)/\(name).npy"])
            XCTAssertEqual(result.status, 0, "\(name): \(result.stdout)\(result.stderr)")
            XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
        }
    }

    /// Jagged batches on structured offsets (`NumPyTests.jaggedOffsets`): the compiled C matches
    /// the interpreter fused, unfused, at other blocks and under the sanitizers. A sequence longer
    /// than max_len stops the compiled harness (`blockc bench`, no interpreter) with the
    /// interpreters' message; with the bound removed from the program's text, the C under the
    /// sanitizers reads nothing out of bounds on those offsets and matches the interpreter (the
    /// band only narrows the loops; nothing is read through the offsets).
    func testJaggedBatchesOnStructuredOffsets() throws {
        let dir = CLI.temporaryDirectory("jagged-verify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = CLI.run("/usr/bin/env", ["python3", "-c", NumPyTests.jaggedOffsetsScript, dir])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (name, segments) in NumPyTests.jaggedOffsets {
            for extra in [["--sanitize"], ["--no-fusion"], ["--block", "i=16,j=32,k=8", "--sanitize"]] {
                let result = CLI.blockc(
                    [
                        "verify", "Examples/attention_jagged.graph", "--dim",
                        "H=2,T=300,d=40,B=\(segments),max_len=100",
                        "--seed", "3", "--input", "offsets=\(dir)/\(name).npy",
                    ] + extra)
                XCTAssertEqual(result.status, 0, "\(name) \(extra): \(result.stdout)\(result.stderr)")
                XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
            }
        }
        let dims = ["--dim", "H=1,T=300,d=16,B=4,max_len=100"]
        let bench = CLI.blockc(
            [
                "bench", "Examples/attention_jagged.graph", "--input", "offsets=\(dir)/long.npy", "--reps", "1",
                "--peak", "1",
            ]
                + dims)
        XCTAssertNotEqual(bench.status, 0)
        XCTAssertTrue(
            bench.stderr.contains(
                "error: input 'offsets' holds segments of at most 100 positions (max_len), but segment 1 "
                    + "(positions 50 ..< 151) holds 101"), bench.stderr)
        let fused = CLI.blockc(["fuse", "Examples/attention_jagged.graph"] + dims)
        XCTAssertEqual(fused.status, 0, fused.stderr)
        XCTAssertTrue(fused.stdout.contains(" offsets into 300 max_len 100"), fused.stdout)
        let unchecked = fused.stdout.replacingOccurrences(of: " max_len 100", with: "")
        try unchecked.write(toFile: dir + "/p.block", atomically: true, encoding: .utf8)
        let result = CLI.blockc(["verify", dir + "/p.block", "--sanitize", "--input", "offsets=\(dir)/long.npy"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("O: max abs error"), result.stdout)
    }

    func testUnfusedProgramsToo() {
        let result = CLI.blockc([
            "verify", "--no-fusion", "Examples/transformer_layer.graph", "--dim", "S=70,H=2,dh=16,F=50",
        ])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    }

    /// A loop without results (no carried values) in a program run unfused: the schedule's
    /// storage analysis must still see its body (it used to skip it, and the emitter trapped).
    func testLoopWithoutResultsUnfused() throws {
        let dir = CLI.temporaryDirectory("noresults")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = """
            program p

            tensor X: f32[64,96] @global input
            tensor Y: f32[64,96] @global output

            kernel k grid(i < 2) {
              for k in 0 ..< 2 {
                %0 = load X[i * 32 +: 32, k * 48 +: 48] : f32[32,48] @local
                %1 = exp %0 : f32[32,48] @local
                store %1 -> Y[i * 32 +: 32, k * 48 +: 48]
                yield
              }
            }

            """
        try text.write(toFile: dir + "/loop.block", atomically: true, encoding: .utf8)
        for target in ["cpu", "sm_90"] {
            let schedule = CLI.blockc(["schedule", "--no-fusion", dir + "/loop.block", "--target", target])
            XCTAssertEqual(schedule.status, 0, schedule.stderr)
            XCTAssertTrue(schedule.stdout.contains("%1 f32[32,48] @local: B0"), schedule.stdout)
        }
        let verify = CLI.blockc(["verify", "--no-fusion", dir + "/loop.block"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
    }
}
