import BlockTestSupport
import Foundation
import XCTest

/// `blockc import`, and `.onnx` files given to `run` and `verify`, on the ONNX fixtures.
final class ONNXCommandTests: XCTestCase {
    static let fixtures = CLI.packageRoot + "/Tests/ONNX/fixtures"
    static let gpt2 = fixtures + "/gpt2_block.onnx"

    /// The largest absolute difference between two `.npy` files of f32, by the run summaries'
    /// source: the files themselves, compared byte-exactly in their header and closely in data.
    static func floats(_ path: String) throws -> [Float] {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path))
        let bytes = [UInt8](data)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        let start = 10 + headerLength
        return stride(from: start, to: bytes.count, by: 4).map { o in
            Float(
                bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16
                    | UInt32(bytes[o + 3]) << 24)
        }
    }

    func testRunTakesAnONNXModelWithItsWeights() throws {
        let dir = CLI.temporaryDirectory("onnx-run")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = CLI.blockc([
            "run", Self.gpt2, "--dim", "seq=16", "--input", "x=\(Self.fixtures)/gpt2_block.input.x.npy",
            "--output-dir", dir,
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("y: f32[1, 16, 32]"), r.stdout)
        let got = try Self.floats(dir + "/y.npy")
        let expected = try Self.floats(Self.fixtures + "/gpt2_block.output.y.npy")
        XCTAssertEqual(got.count, expected.count)
        XCTAssertLessThan(zip(got, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4)
    }

    func testImportWritesAGraphAndWeightsThatRunTheSame() throws {
        let dir = CLI.temporaryDirectory("onnx-import")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let imported = CLI.blockc([
            "import", Self.gpt2, "--dim", "seq=16", "-o", dir + "/gpt2.graph", "--weights-dir", dir + "/w",
        ])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let text = try String(contentsOfFile: dir + "/gpt2.graph", encoding: .utf8)
        XCTAssertTrue(text.contains("input attn_c_attn_weight: [32, 96]"), text)
        XCTAssertTrue(text.contains("i - j >= 0"), "the causal mask is a predicate:\n" + text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/w/attn_c_attn_weight.npy"))
        let input = "x=\(Self.fixtures)/gpt2_block.input.x.npy"
        let viaGraph = CLI.blockc(["run", dir + "/gpt2.graph", "--weights-dir", dir + "/w", "--input", input])
        let viaONNX = CLI.blockc(["run", Self.gpt2, "--dim", "seq=16", "--input", input])
        XCTAssertEqual(viaGraph.status, 0, viaGraph.stderr)
        XCTAssertEqual(viaGraph.stdout, viaONNX.stdout)
        XCTAssertEqual(viaGraph.stderr, "")
        // The printed graph parses back to itself.
        let again = CLI.blockc(["import", Self.gpt2, "--dim", "seq=16"])
        XCTAssertEqual(again.stdout, text)
        XCTAssertTrue(again.stderr.contains("give --weights-dir DIR"), again.stderr)
    }

    func testACUDABundleCarriesTheModelsWeights() throws {
        let dir = CLI.temporaryDirectory("onnx-bundle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let imported = CLI.blockc([
            "import", Self.gpt2, "--dim", "seq=16", "-o", dir + "/g.graph", "--weights-dir", dir + "/w",
        ])
        XCTAssertEqual(imported.status, 0, imported.stderr)
        let bundle = CLI.blockc(["emit-cuda", Self.gpt2, "--dim", "seq=16", "--bundle", dir + "/b"])
        XCTAssertEqual(bundle.status, 0, bundle.stderr)
        for name in ["ln1_weight", "attn_c_attn_weight", "mlp_c_proj_bias"] {
            let fromBundle = try Self.floats(dir + "/b/inputs/\(name).npy")
            XCTAssertEqual(fromBundle, try Self.floats(dir + "/w/\(name).npy"), name)
            XCTAssertFalse(fromBundle.isEmpty)
        }
    }

    func testVerifyCompilesAnONNXModel() {
        let r = CLI.blockc(["verify", Self.gpt2, "--dim", "seq=16"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.hasPrefix("y:"), r.stdout)
    }

    /// The PyTorch exports, each given its stored inputs: `run` (the interpreter) matches ONNX
    /// Runtime's stored output within 1e-4, and `verify` finds the compiled C within its tolerance
    /// of the interpreter (1e-4 · max(1, max|ref|)) on the same inputs.
    func testRunAndVerifyThePyTorchExportsOnTheirInputs() throws {
        let exports: [(String, [String])] = [
            ("gpt2_torch", ["x"]), ("llama_torch", ["x"]), ("bert_dynamo18", ["x", "mask"]),
            ("bert_dynamo20", ["x", "mask"]), ("bert_ts14", ["x", "mask"]), ("bert_ts17", ["x", "mask"]),
        ]
        for (name, inputs) in exports {
            let dir = CLI.temporaryDirectory("onnx-\(name)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let model = Self.fixtures + "/\(name).onnx"
            var options = name.hasPrefix("bert") ? ["--dim", "seq=16"] : []
            for input in inputs {
                options += ["--input", "\(input)=\(Self.fixtures)/\(name).input.\(input).npy"]
            }
            let run = CLI.blockc(["run", model, "--output-dir", dir] + options)
            XCTAssertEqual(run.status, 0, name + ": " + run.stderr)
            let got = try Self.floats(dir + "/y.npy")
            let expected = try Self.floats(Self.fixtures + "/\(name).output.y.npy")
            XCTAssertEqual(got.count, expected.count, name)
            XCTAssertLessThan(zip(got, expected).map { abs($0 - $1) }.max() ?? 1, 1e-4, name)
            let verify = CLI.blockc(["verify", model] + options)
            XCTAssertEqual(verify.status, 0, name + ": " + verify.stderr + verify.stdout)
            XCTAssertTrue(verify.stdout.hasPrefix("y: max abs error"), verify.stdout)
            XCTAssertTrue(verify.stdout.hasSuffix(") ok\n"), verify.stdout)
        }
    }

    /// The exporter's causal mask fills with the lowest float (`finfo.min`), not `-inf`: with
    /// 8-row blocks (two key blocks at seq 16) R9 still skips the key block right of the diagonal
    /// (`blockc fuse` shows the bounded loop), and the compiled C, which skips it, matches the
    /// interpreter on the stored inputs, and so ONNX Runtime's outputs.
    func testExportedCausalMasksSkipTheBlocksRightOfTheDiagonal() {
        for name in ["gpt2_torch", "llama_torch"] {
            let model = Self.fixtures + "/\(name).onnx"
            let options = ["--block", "i=8,j=8,k=8", "--input", "x=\(Self.fixtures)/\(name).input.x.npy"]
            let fuse = CLI.blockc(["fuse", model] + options.prefix(2))
            XCTAssertEqual(fuse.status, 0, name + ": " + fuse.stderr)
            XCTAssertTrue(fuse.stdout.contains(" in 0 ..< min(2, i + 1) iter("), name + ": " + fuse.stdout)
            let verify = CLI.blockc(["verify", model] + options)
            XCTAssertEqual(verify.status, 0, name + ": " + verify.stderr + verify.stdout)
            XCTAssertTrue(verify.stdout.hasSuffix(") ok\n"), verify.stdout)
        }
    }

    func testImportNeverOverwritesTheModel() throws {
        let dir = CLI.temporaryDirectory("onnx-overwrite")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = dir + "/m.onnx"
        try FileManager.default.copyItem(atPath: Self.gpt2, toPath: model)
        let before = try Data(contentsOf: URL(fileURLWithPath: model))
        let r = CLI.blockc(["import", model, "--dim", "seq=16", "-o", model])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("would overwrite the input file"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model)), before)
    }

    func testErrorsNameWhatToDo() {
        let missingDim = CLI.blockc(["run", Self.gpt2])
        XCTAssertNotEqual(missingDim.status, 0)
        XCTAssertTrue(missingDim.stderr.contains("bind it with --dim seq=VALUE"), missingDim.stderr)
        let noFolder = CLI.blockc(["run", Self.gpt2, "--dim", "seq=16", "--weights-dir", "/nonexistent-blockc"])
        XCTAssertNotEqual(noFolder.status, 0)
        XCTAssertTrue(noFolder.stderr.contains("no such folder"), noFolder.stderr)
        let notONNX = CLI.blockc(["import", CLI.packageRoot + "/Examples/attention.graph"])
        XCTAssertNotEqual(notONNX.status, 0)
        XCTAssertTrue(notONNX.stderr.contains("reads an ONNX model"), notONNX.stderr)
        let help = CLI.blockc(["import", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--weights-dir DIR"), help.stdout)
    }

    /// `Examples/python/onnx_ctypes.py`: the Llama-style fixture built by blockc and called through
    /// ctypes on NumPy arrays; its outputs match the reference (ONNX Runtime where installed, else
    /// `blockc run`) within 1e-4 relative to the output's magnitude.
    func testPythonCtypesExample() throws {
        let result = CLI.run(
            "/usr/bin/env", ["python3", "Examples/python/onnx_ctypes.py", "--blockc", CLI.binary],
            environment: ["BLOCKC_CORES": String(CLI.pinnedCores)])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("y: (1, 16, 48) max abs error"), result.stdout)
        XCTAssertTrue(result.stdout.contains("blk_u_llama_block from libmodel.so"), result.stdout)
        XCTAssertTrue(result.stdout.hasSuffix(": ok\n"), result.stdout)
        if let folder = result.stdout.range(of: #"in (/\S+):"#, options: .regularExpression) {
            let path = String(result.stdout[folder].dropFirst(3).dropLast())
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
