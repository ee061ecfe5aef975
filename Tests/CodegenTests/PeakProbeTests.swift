import Codegen
import XCTest

/// The FMA peak probe: its output lines parse (others are ignored), and its source builds and
/// runs here with the flags of the generated C.
final class PeakProbeTests: XCTestCase {
    func testParse() {
        let text = """
            cpu Some CPU
            peak_fma isa=avx2_ymm_fma threads=1 accumulators=12 max 91.5 median 90.2 GFLOP/s (7 reps)
            peak_fma isa=avx2_ymm_fma threads=2 accumulators=12 max 183.9 median 180.0 GFLOP/s (7 reps)
            peak_fma isa=avx2 threads=x accumulators=12 max 1 median 1 GFLOP/s (7 reps)
            peak_dpbf16 isa=avx512_zmm_dpbf16 threads=2 accumulators=24 max 466.1 median 459.5 GFLOP/s (7 reps)
            garbage
            """
        XCTAssertEqual(
            PeakProbe.parse(text),
            [
                PeakProbe.Measurement(isa: "avx2_ymm_fma", threads: 1, best: 91.5, median: 90.2),
                PeakProbe.Measurement(isa: "avx2_ymm_fma", threads: 2, best: 183.9, median: 180.0),
            ])
        XCTAssertEqual(
            PeakProbe.parse(text, kind: "peak_dpbf16"),
            [PeakProbe.Measurement(isa: "avx512_zmm_dpbf16", threads: 2, best: 466.1, median: 459.5)])
        XCTAssertEqual(PeakProbe.parse(""), [])
    }

    func testMeasuresThisHost() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blockc-peak-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (lines, output) = try PeakProbe.measure(directory: dir, seconds: 0.02, reps: 2)
        XCTAssertEqual(lines.first?.threads, 1)
        // The bf16 dot peak is measured exactly where the generated C's flags give AVX512_BF16.
        let probe = try CCompiler.buildProgram(
            source:
                "#include <stdio.h>\nint main(void) {\n#ifdef __AVX512BF16__\n  puts(\"1\");\n#else\n  puts(\"0\");\n#endif\n"
                + "  return 0;\n}\n", name: "has_bf16", directory: dir, flags: ["-O2"])
        let hasBF16 = try CCompiler.run(probe, []).stdout.hasPrefix("1")
        let bf16 = PeakProbe.parse(output, kind: "peak_dpbf16")
        XCTAssertEqual(bf16.map(\.threads), hasBF16 ? lines.map(\.threads) : [], output)
        for line in bf16 {
            XCTAssertEqual(line.isa, "avx512_zmm_dpbf16")
            XCTAssertGreaterThan(line.best, 0)
            XCTAssertGreaterThanOrEqual(line.best, line.median)
        }
        for line in lines {
            XCTAssertGreaterThan(line.best, 0)
            XCTAssertGreaterThanOrEqual(line.best, line.median)
            XCTAssertTrue(["avx512_zmm_fma", "avx2_ymm_fma", "scalar_no_simd_fma"].contains(line.isa), line.isa)
        }
    }
}
