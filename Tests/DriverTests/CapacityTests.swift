import BlockTestSupport
import Foundation
import XCTest

/// Any block sizes either give a program that fits the target's local tier, or an error up front
/// that names the blocks and suggests ones that fit; never a kernel the verifier rejects after
/// fusion ("a compiler bug").
final class CapacityTests: XCTestCase {
    /// Every example at 256-row blocks on both GPU targets: fused and scheduled, every stage
    /// verified (capacity included), or refused up front as too large.
    func testEveryExampleAtLargeRowBlocksFitsOrIsRefusedUpFront() {
        for name in Examples.names {
            for target in ["sm_80", "sm_90"] {
                let result = CLI.blockc(["schedule", Examples.path(name), "--target", target, "--block", "i=256"])
                XCTAssertFalse(result.stderr.contains("compiler bug"), "\(name) \(target): \(result.stderr)")
                if result.status != 0 {
                    XCTAssertTrue(
                        result.stderr.contains("do not fit \(target)'s local tier"),
                        "\(name) \(target): \(result.stderr)")
                } else {
                    XCTAssertTrue(result.stdout.contains("kernel"), "\(name) \(target): \(result.stdout)")
                }
            }
        }
    }

    /// The kernels the issue names: fused at `i=256` on sm_80 and sm_90 (these fit when fusion
    /// keeps what would overflow apart), and `explain` says which step was not taken and why.
    func testNamedExamplesFuseAt256Rows() {
        for name in ["layernorm_matmul", "attention", "rmsnorm_swiglu", "transformer_layer"] {
            for target in ["sm_80", "sm_90"] {
                let result = CLI.blockc(["fuse", Examples.path(name), "--target", target, "--block", "i=256"])
                XCTAssertEqual(result.status, 0, "\(name) \(target): \(result.stderr)")
            }
        }
        let explain = CLI.blockc(["explain", Examples.path("rmsnorm_swiglu"), "--target", "sm_80", "--block", "i=256"])
        XCTAssertEqual(explain.status, 0, explain.stderr)
        XCTAssertTrue(explain.stdout.contains("more than sm_80's 166912"), explain.stdout)
    }

    /// Blocks whose naive program cannot fit: an error that says so before fusion, with blocks
    /// that do fit, and a non-zero exit.
    func testBlocksTooLargeAreRefusedWithAdvice() {
        let result = CLI.blockc(["fuse", Examples.path("layernorm_matmul"), "--target", "sm_80", "--block", "i=1024"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains(
                "the requested block sizes (i=1024,j=64,k=64) do not fit sm_80's local tier of 166912 bytes"),
            result.stderr)
        XCTAssertFalse(result.stderr.contains("compiler bug"), result.stderr)
        // The advice is itself a working choice.
        guard let range = result.stderr.range(of: "for example --block ") else {
            return XCTFail("no advice: \(result.stderr)")
        }
        let advice = result.stderr[range.upperBound...].prefix { $0 != ")" }
        let retry = CLI.blockc([
            "fuse", Examples.path("layernorm_matmul"), "--target", "sm_80", "--block", String(advice),
        ])
        XCTAssertEqual(retry.status, 0, "\(advice): \(retry.stderr)")
    }
}
