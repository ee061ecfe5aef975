import XCTest

@testable import Codegen

/// `BarrierPlan` on hand-written kernel text: which candidate barriers it keeps (the examples run on the CUDA
/// emulator with its race check in `CudaTests`).
final class BarrierPlanTests: XCTestCase {
    let candidate = BarrierPlan.candidate

    /// The kept candidates' indices: each kept one becomes a `SYNC n` line.
    func kept(_ lines: [String]) -> (kept: [Int], plan: BarrierPlan) {
        var numbered: [String] = []
        var n = 0
        for line in lines {
            if line.trimmingCharacters(in: .whitespaces) == candidate {
                numbered.append(line)
                numbered.append("// candidate \(n)")
                n += 1
            } else {
                numbered.append(line)
            }
        }
        let (text, plan) = BarrierPlan.resolve(numbered.joined(separator: "\n"), barrier: "SYNC")
        var result: [Int] = []
        let out = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        for (k, line) in out.enumerated() where line == "SYNC" {
            if k + 1 < out.count, out[k + 1].hasPrefix("// candidate "), let c = Int(out[k + 1].dropFirst(13)) {
                result.append(c)
            }
        }
        return (result, plan)
    }

    let header = [
        "float *__restrict__ B0 = blk_smem + 0;",
        "float *__restrict__ B1 = blk_smem + 64;",
        "float *v1 = B0;",
    ]

    func write1D(_ name: String) -> [String] {
        [
            "for (long f_ = threadIdx.x; f_ < 8; f_ += blockDim.x) {", "const long r_ = f_;", "\(name)[r_] = 1.0f;",
            "}",
        ]
    }

    /// A 2-D loop over 8x8 elements reading `name[r_]`: a broadcast, any thread.
    func broadcastRead(_ name: String) -> [String] {
        [
            "for (long f_ = threadIdx.x; f_ < 64; f_ += blockDim.x) {", "const long r_ = f_ / 8, c_ = f_ % 8;",
            "B1[r_ * 8 + c_] = \(name)[r_];", "}",
        ]
    }

    func testSameThreadNeedsNoBarrierAndABroadcastDoes() {
        let same = kept(header + write1D("v1") + [candidate] + write1D("v1") + [candidate])
        XCTAssertEqual(same.kept, [])
        XCTAssertEqual(same.plan.placed, 2)
        let broadcast = kept(header + write1D("v1") + [candidate] + broadcastRead("v1") + [candidate])
        XCTAssertEqual(broadcast.kept, [0])
        XCTAssertEqual(broadcast.plan.kept, 1)
    }

    /// The latest candidate between the two accesses is the one kept.
    func testTheLatestCandidateIsKept() {
        let lines = header + write1D("v1") + [candidate] + write1D("B1") + [candidate] + broadcastRead("v1")
        XCTAssertEqual(kept(lines).kept, [1])
    }

    /// A write at the end of an iteration and a read at the top of the next (read after write), a read and then a
    /// write in one iteration (write after read).
    func testLoopCarriedAccesses() {
        let loop = ["for (long k = 0; k < 4; k++) {", BarrierPlan.loopBegin]
        let end = [BarrierPlan.loopEnd, "}"]
        let lines = header + loop + broadcastRead("v1") + [candidate] + write1D("v1") + [candidate] + end + [candidate]
        XCTAssertEqual(kept(lines).kept, [0, 1])
        // Without the read at the top, nothing in the loop needs a barrier.
        let quiet = header + loop + write1D("v1") + [candidate] + write1D("v1") + [candidate] + end + [candidate]
        XCTAssertEqual(kept(quiet).kept, [])
    }

    /// A loop may run zero times: a write before it and a read after it need the barrier after the loop, not one
    /// inside it.
    func testZeroTripLoop() {
        let lines =
            header + write1D("v1") + ["for (long k = 0; k < n; k++) {", BarrierPlan.loopBegin] + write1D("B1")
            + [candidate, BarrierPlan.loopEnd, "}", candidate] + broadcastRead("v1")
        XCTAssertEqual(kept(lines).kept, [1])
    }

    /// A run-time extent: two loops over copies of one value map alike, a value computed again does not.
    func testRunTimeExtents() {
        func loop(_ e: String, _ name: String) -> [String] {
            [
                "for (long f_ = threadIdx.x; f_ < 8 * \(e); f_ += blockDim.x) {",
                "const long r_ = f_ / \(e), c_ = f_ % \(e);", "\(name)[r_ * 8 + c_] = 1.0f;", "}",
            ]
        }
        let copies =
            header + ["const long e1_1 = blk_extent(n, 0, 8);", "const long e2_1 = e1_1;"] + loop("e1_1", "v1")
            + [candidate] + loop("e2_1", "v1") + [candidate]
        XCTAssertEqual(kept(copies).kept, [])
        let recomputed =
            header + ["const long e1_1 = blk_extent(n, 0, 8);", "const long e2_1 = blk_extent(n, 0, 8);"]
            + loop("e1_1", "v1") + [candidate] + loop("e2_1", "v1") + [candidate]
        XCTAssertEqual(kept(recomputed).kept, [0])
        let undefined = header + loop("e1_1", "v1") + [candidate] + loop("e1_1", "v1")
        XCTAssertEqual(kept(undefined).kept, [0])
    }

    /// A pointer passed to a call counts as written; `blk_gemm` reads its operands and writes its output (4x4 tiles:
    /// any thread).
    func testCalls() {
        let gemm = "blk_gemm(8, 8, 8, v1, 8, 1, v1, 8, B1, 8, 0);"
        XCTAssertEqual(kept(header + write1D("v1") + [candidate] + [gemm]).kept, [0])
        XCTAssertEqual(kept(header + [gemm, candidate] + write1D("B1")).kept, [0])
        XCTAssertEqual(kept(header + [gemm, candidate, "blk_gemm(8, 8, 8, v1, 8, 1, v1, 8, B0 + 0, 8, 0);"]).kept, [0])
        // The tensor cores' products read their operands and write their output (argument 8) alike: two products
        // reading v1 need no barrier between them; one that writes what the other reads or writes does.
        let mma = "blk_gemm_mma_32x16(8, 8, 8, v1, 8, 1, v1, 8, B1, 8, 0);"
        XCTAssertEqual(kept(header + write1D("v1") + [candidate] + [mma]).kept, [0])
        XCTAssertEqual(kept(header + [mma, candidate] + write1D("B1")).kept, [0])
        XCTAssertEqual(
            kept(header + [mma, candidate, "blk_gemm_mma_16x8(8, 8, 8, B1, 8, 1, v1, 8, v1, 8, 0);"]).kept, [0])
        XCTAssertEqual(
            kept(header + [mma, candidate, "blk_gemm_mma_16x8(8, 8, 8, v1, 8, 1, v1, 8, B1, 8, 1);"]).kept, [0])
        XCTAssertEqual(kept(header + [gemm, candidate, mma]).kept, [0])
        // The operands are only read: a read of v1 after the product needs no barrier (after any other call, which
        // may write what it is passed, it does).
        let reads = "blk_gemm_mma_16x16(8, 8, 8, v1, 8, 1, v1, 8, B1, 8, 0);"
        XCTAssertEqual(kept(header + [reads, candidate, "const float x_ = v1[3];"]).kept, [])
        XCTAssertEqual(kept(header + ["blk_other(v1);", candidate, "const float x_ = v1[3];"]).kept, [0])
    }
}
