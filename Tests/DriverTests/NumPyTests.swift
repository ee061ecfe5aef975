import BlockTestSupport
import Foundation
import XCTest

/// Every example, at reduced sizes, run by the interpreter (graph level and naive block program)
/// against NumPy on the same saved inputs (`Tests/NumPy/reference.py`; tolerance there).
final class NumPyTests: XCTestCase {
    /// Reduced sizes: small enough for a debug-build interpreter, odd enough for edge blocks.
    static let cases: [(example: String, dims: [String], extra: [String])] = [
        ("attention", ["--dim", "BH=2,N=128,d=64"], []),
        ("attention", ["--dim", "BH=1,N=100,d=40"], []),
        ("attention_causal", ["--dim", "BH=2,N=128,d=64"], []),
        ("attention_causal", ["--dim", "BH=1,N=90,d=24"], []),
        ("attention_sliding_window", ["--dim", "BH=1,N=300,d=16,W=40"], ["40"]),
        ("attention_documents", ["--dim", "BH=1,N=800,d=16"], []),
        ("embedding_rmsnorm", ["--dim", "T=70,V=90,D=80,F=48"], []),
        ("attention_gqa", ["--dim", "B=2,Hkv=2,g=3,H=6,N=70,d=16"], []),
        ("decode_attention", ["--dim", "BH=3,N=200,d=24"], []),
        // A random mask (each key kept with probability 1/2); structured ones below.
        ("attention_block_mask", ["--dim", "BH=2,N=150,d=24"], []),
        // A random block mask (rows of blocks kept by none are NaN, as NumPy's), read directly
        // (32-blocks at 16-blocks) and expanded in the kernels (15-blocks at 64-blocks, not aligned).
        ("attention_block_mask_blocks", ["--dim", "BH=2,N=160,d=24,bs=32", "--block", "i=16,j=16,k=16"], ["32"]),
        ("attention_block_mask_blocks", ["--dim", "BH=2,N=150,d=24,bs=15"], ["15"]),
        // Random offsets are valid ones (RandomInputs: 0, sorted uniform positions, N).
        ("attention_packed", ["--dim", "BH=2,N=150,d=24,D=4"], []),
        // Random lengths of at most max_len; the reference attends sequence by sequence.
        ("attention_jagged", ["--dim", "H=2,T=150,d=24,B=4,max_len=64"], []),
        ("attention_alibi", ["--dim", "B=2,H=3,N=90,d=24"], []),
        ("attention_chunked", ["--dim", "BH=1,N=300,C=64,d=16"], ["64"]),
        ("attention_rope", ["--dim", "B=1,H=2,N=90,d=24"], []),
        ("attention_dca", ["--dim", "B=1,H=2,C=30,NC=4,d=16"], ["30"]),
        ("stick_breaking_attention", ["--dim", "BH=2,N=150,d=24"], []),
        ("layernorm_matmul", ["--dim", "M=96,K=80,N=72"], []),
        ("rmsnorm_swiglu", ["--dim", "M=64,d=96,h=160"], []),
        ("transformer_layer", ["--dim", "S=72,H=2,dh=32,F=96"], ["32"]),
        ("llama_layer_prefill", ["--dim", "S=72,D=64,H=4,Hkv=2,F=96"], ["4"]),
        // N = 601: 10 key blocks, which R15 splits into 2 chunks at the pinned 16 cores.
        ("llama_layer_decode", ["--dim", "D=64,H=4,Hkv=2,N=601,F=96"], ["4"]),
        ("attention_bf16", ["--dim", "BH=2,N=128,d=64"], []),
        ("rmsnorm_swiglu_bf16", ["--dim", "M=64,d=96,h=160"], []),
    ]

    func testExamplesMatchNumPy() throws {
        Examples.assertCovered(by: Self.cases.map(\.example), in: "NumPyTests.cases")
        for (example, dims, extra) in Self.cases {
            for stage in ["graph", "lower", "fuse"] {
                let dir = CLI.temporaryDirectory("numpy")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let run = CLI.blockc(
                    [
                        "run", "Examples/\(example).graph", "--seed", "1", "--save-inputs", "--output-dir", dir,
                        "--stage", stage,
                    ]
                        + dims)
                XCTAssertEqual(run.status, 0, "\(example) \(dims) \(stage): \(run.stderr)")
                let check = CLI.run(
                    "/usr/bin/env", ["python3", "Tests/NumPy/reference.py", example, dir] + extra)
                XCTAssertEqual(check.status, 0, "\(example) \(dims) stage \(stage): \(check.stdout)\(check.stderr)")
            }
        }
    }

    /// Attention under structured masks given with `--input` (banded, block-diagonal, random
    /// 64-blocks with the diagonal kept: blocks skipped whole and blocks tested per element), at
    /// every stage, against NumPy.
    func testBlockMaskExampleOnStructuredMasks() throws {
        let dir = CLI.temporaryDirectory("blockmask")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import numpy as np, sys
            n = 200
            i = np.arange(n)[:, None]; j = np.arange(n)[None, :]
            keep = np.random.default_rng(3).random((4, 4)) < 0.4
            masks = {"banded": abs(i - j) < 50, "documents": i // 70 == j // 70,
                     "blocks": keep[i // 64, j // 64] | (i == j)}
            for name, m in masks.items():
                np.save(f"{sys.argv[1]}/{name}.npy", m.reshape(1, n, n))
            np.save(f"{sys.argv[1]}/offsets.npy", np.array([0, 37, 130, 130, 200], dtype=np.int32))
            """
        let made = CLI.run("/usr/bin/env", ["python3", "-c", script, dir])
        XCTAssertEqual(made.status, 0, made.stderr)
        for mask in ["banded", "documents", "blocks"] {
            for stage in ["graph", "lower", "fuse"] {
                let out = dir + "/" + mask + "-" + stage
                let run = CLI.blockc(
                    [
                        "run", "Examples/attention_block_mask.graph", "--dim", "BH=2,N=200,d=24", "--seed", "1",
                        "--input", "M=\(dir)/\(mask).npy", "--save-inputs", "--output-dir", out, "--stage", stage,
                    ])
                XCTAssertEqual(run.status, 0, "\(mask) \(stage): \(run.stderr)")
                let check = CLI.run(
                    "/usr/bin/env", ["python3", "Tests/NumPy/reference.py", "attention_block_mask", out])
                XCTAssertEqual(check.status, 0, "\(mask) stage \(stage): \(check.stdout)\(check.stderr)")
            }
        }
        // Packed documents (one empty) at run time.
        for stage in ["graph", "lower", "fuse"] {
            let out = dir + "/packed-" + stage
            let run = CLI.blockc(
                [
                    "run", "Examples/attention_packed.graph", "--dim", "BH=2,N=200,d=24,D=4", "--seed", "1",
                    "--input", "offsets=\(dir)/offsets.npy", "--save-inputs", "--output-dir", out, "--stage", stage,
                ])
            XCTAssertEqual(run.status, 0, "packed \(stage): \(run.stderr)")
            let check = CLI.run("/usr/bin/env", ["python3", "Tests/NumPy/reference.py", "attention_packed", out])
            XCTAssertEqual(check.status, 0, "packed stage \(stage): \(check.stdout)\(check.stderr)")
        }
    }

    /// Jagged batches (Examples/attention_jagged.graph, T = 300, max_len = 100) on structured
    /// offsets given with `--input`: equal lengths, one sequence of max_len and many short ones,
    /// empty sequences, lengths off the 64-blocks; at every stage against NumPy's attention
    /// sequence by sequence (no mask, no padding).
    func testJaggedBatchesOnStructuredOffsets() throws {
        let dir = CLI.temporaryDirectory("jagged")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let made = CLI.run("/usr/bin/env", ["python3", "-c", Self.jaggedOffsetsScript, dir])
        XCTAssertEqual(made.status, 0, made.stderr)
        for (name, segments) in Self.jaggedOffsets {
            for stage in ["graph", "lower", "fuse"] {
                let out = dir + "/" + name + "-" + stage
                let run = CLI.blockc(
                    [
                        "run", "Examples/attention_jagged.graph", "--dim", "H=2,T=300,d=24,B=\(segments),max_len=100",
                        "--seed", "1", "--input", "offsets=\(dir)/\(name).npy", "--save-inputs", "--output-dir", out,
                        "--stage", stage,
                    ])
                XCTAssertEqual(run.status, 0, "\(name) \(stage): \(run.stderr)")
                let check = CLI.run("/usr/bin/env", ["python3", "Tests/NumPy/reference.py", "attention_jagged", out])
                XCTAssertEqual(check.status, 0, "\(name) stage \(stage): \(check.stdout)\(check.stderr)")
            }
        }
    }

    /// Structured jagged offsets into 300 positions with lengths of at most 100, by file name,
    /// with their segment counts (`Self.jaggedOffsetsScript` writes them).
    static let jaggedOffsets: [(name: String, segments: Int)] = [
        ("equal", 5), ("long-short", 9), ("empty", 7), ("off-blocks", 5),
    ]
    static let jaggedOffsetsScript = """
        import numpy as np, sys
        offsets = {"equal": [0, 60, 120, 180, 240, 300],
                   "long-short": [0, 100, 125, 150, 175, 200, 225, 250, 277, 300],
                   "empty": [0, 0, 70, 70, 170, 250, 300, 300],
                   "off-blocks": [0, 7, 71, 150, 229, 300]}
        for name, o in offsets.items():
            np.save(f"{sys.argv[1]}/{name}.npy", np.array(o, dtype=np.int32))
        np.save(f"{sys.argv[1]}/long.npy", np.array([0, 50, 151, 200, 300], dtype=np.int32))
        """

    /// The acceptance check: the attention example writes Q, K, V and O, and O matches.
    func testAttentionSavesInputsAndOutput() throws {
        let dir = CLI.temporaryDirectory("attn")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = CLI.blockc(
            ["run", "Examples/attention.graph", "--seed", "1", "--save-inputs", "--output-dir", dir, "--dim", "N=128"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for name in ["Q", "K", "V", "O"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/\(name).npy"), "\(name).npy missing")
        }
        XCTAssertTrue(run.stdout.hasPrefix("O: f32[8, 128, 64]"), run.stdout)
        let check = CLI.run("/usr/bin/env", ["python3", "Tests/NumPy/reference.py", "attention", dir])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
    }

    /// Inputs given as .npy files are used instead of random ones.
    func testInputFromNpyFile() throws {
        let dir = CLI.temporaryDirectory("npyin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = CLI.blockc(
            [
                "run", "Examples/layernorm_matmul.graph", "--dim", "M=8,K=16,N=8", "--seed", "7", "--save-inputs",
                "--output-dir", dir,
            ])
        XCTAssertEqual(first.status, 0, first.stderr)
        let again = CLI.blockc(
            [
                "run", "Examples/layernorm_matmul.graph", "--dim", "M=8,K=16,N=8", "--seed", "99",
                "--input", "X=\(dir)/X.npy", "--input", "gamma=\(dir)/gamma.npy", "--input", "beta=\(dir)/beta.npy",
                "--input", "W=\(dir)/W.npy",
            ])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(first.stdout, again.stdout)
    }
}
