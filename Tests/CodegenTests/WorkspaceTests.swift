import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import XCTest

/// A kernel's packed copies and the entry's temporaries live in workspaces kept between calls
/// (`blk_workspace`): repeated calls, and calls from two threads at once (the second finds the
/// workspace taken and packs into, or computes in, a copy of its own), give the same bits as a
/// first call on the same inputs.
final class WorkspaceTests: XCTestCase {
    func testRepeatedAndConcurrentCallsAgree() throws {
        let dims = ["BH": 2, "N": 256, "d": 32]
        // The unfused attention: its temporaries (S, P, …) are workspaces kept between calls too.
        let text = try String(
            contentsOf: FusedCodegenTests.examples.appendingPathComponent("attention.graph"), encoding: .utf8)
        let unfused = try CodegenHarness.lower(
            try GraphParser.parse(text, defaultName: "g", dimOverrides: dims), i: 32, j: 32, k: 32)
        let cases = [
            ("attention.graph", try FusedCodegenTests.fused("attention.graph", dims: dims, block: 32), "&W0"),
            ("attention_bf16.graph", try FusedCodegenTests.fused("attention_bf16.graph", dims: dims, block: 32), "&W0"),
            ("attention.graph unfused", unfused, "&blk_tw"),
        ]
        for (file, program, workspace) in cases {
            let source = CEmitter.emit(program)
            XCTAssert(source.source.contains("blk_workspace_take(\(workspace)"), "\(file): no workspace \(workspace)")
            let dir = CodegenHarness.scratch("workspace")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try source.header.write(
                toFile: dir + "/" + source.headerName + ".h", atomically: true, encoding: String.Encoding.utf8)
            let exe = try CCompiler.buildProgram(
                source: source.source + Self.main(entry: source.name, bf16: file.contains("bf16")),
                name: "workspace", directory: dir, flags: CCompiler.baseFlags + ["-I", dir, "-pthread"])
            let run = try CCompiler.run(exe, [], environment: ["OMP_NUM_THREADS": "2"])
            XCTAssertEqual(run.status, 0, "\(file): \(run.stdout)\(run.stderr)")
            XCTAssert(run.stdout.contains("mismatches 0 of 200 calls"), "\(file): \(run.stdout)")
        }
    }

    /// Two input sets; each thread calls the entry 100 times on its set and compares every
    /// output bit with a first, single-threaded call's.
    static func main(entry: String, bf16: Bool) -> String {
        let t = bf16 ? "uint16_t" : "float"
        let value = bf16 ? "(uint16_t)(0x3c00u + (h % 0x0400u))" : "(float)(h % 1000u) / 500.0f - 1.0f"
        return """

            #include <pthread.h>
            #include <stdio.h>
            enum { n = 2 * 256 * 32 };
            static \(t) in[2][3][n], want[2][n];
            static int mismatches;
            static void *caller(void *arg) {
                long s = (long)arg;
                static \(t) out[2][n];
                for (int c = 0; c < 100; c++) {
                    \(entry)(in[s][0], in[s][1], in[s][2], out[s]);
                    if (memcmp(out[s], want[s], sizeof out[s]) != 0) __atomic_add_fetch(&mismatches, 1, __ATOMIC_RELAXED);
                }
                return NULL;
            }
            int main(void) {
                unsigned h = 12345u;
                for (int s = 0; s < 2; s++)
                    for (int a = 0; a < 3; a++)
                        for (int e = 0; e < n; e++) { h = h * 1664525u + 1013904223u; in[s][a][e] = \(value); }
                for (int s = 0; s < 2; s++) \(entry)(in[s][0], in[s][1], in[s][2], want[s]);
                pthread_t th[2];
                for (long s = 0; s < 2; s++) pthread_create(&th[s], NULL, caller, (void *)s);
                for (int s = 0; s < 2; s++) pthread_join(th[s], NULL);
                printf("mismatches %d of 200 calls\\n", mismatches);
                return 0;
            }

            """
    }
}
