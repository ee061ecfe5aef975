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
            garbage
            """
        XCTAssertEqual(
            PeakProbe.parse(text),
            [
                PeakProbe.Measurement(isa: "avx2_ymm_fma", threads: 1, best: 91.5, median: 90.2),
                PeakProbe.Measurement(isa: "avx2_ymm_fma", threads: 2, best: 183.9, median: 180.0),
            ])
        XCTAssertEqual(PeakProbe.parse(""), [])
    }

    func testMeasuresThisHost() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("blockc-peak-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = try PeakProbe.measure(directory: dir, seconds: 0.02, reps: 2).measurements
        XCTAssertEqual(lines.first?.threads, 1)
        for line in lines {
            XCTAssertGreaterThan(line.best, 0)
            XCTAssertGreaterThanOrEqual(line.best, line.median)
            XCTAssertTrue(["avx512_zmm_fma", "avx2_ymm_fma", "scalar_no_simd_fma"].contains(line.isa), line.isa)
        }
    }
}
