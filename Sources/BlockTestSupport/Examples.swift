import Foundation
import XCTest

/// The example programs, listed in one place: every `Examples/*.graph` file, so adding an example
/// adds it to every test that runs all examples.
public enum Examples {
    /// The examples' names (file names without `.graph`), sorted.
    public static let names: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: CLI.packageRoot + "/Examples")) ?? []
        return files.filter { $0.hasSuffix(".graph") }.map { String($0.dropLast(".graph".count)) }.sorted()
    }()

    /// An example's path relative to the package root (where `CLI.blockc` runs).
    public static func path(_ name: String) -> String { "Examples/\(name).graph" }

    /// Fails unless a per-example table (reduced sizes, say) names exactly the examples: a new
    /// example needs its row, and a row for an example that is gone is an error.
    public static func assertCovered(
        by tabled: [String], in table: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertFalse(names.isEmpty, "no examples found under \(CLI.packageRoot)/Examples", file: file, line: line)
        let missing = names.filter { !tabled.contains($0) }
        let unknown = Set(tabled).subtracting(names).sorted()
        XCTAssertEqual(missing, [], "\(table) has no entry for these examples; add one", file: file, line: line)
        XCTAssertEqual(unknown, [], "\(table) names examples that do not exist", file: file, line: line)
    }
}
