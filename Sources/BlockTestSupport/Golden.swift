import Foundation
import XCTest

/// Golden-file comparison: `assertGolden(actual, path)` compares text with a checked-in file.
///
/// A missing golden is recorded and the test fails (review and commit it). With
/// `BLOCKC_BLESS=1` in the environment a differing golden is rewritten, and the test fails so
/// the diff gets reviewed; run the tests again to see them pass.
public func assertGolden(_ actual: String, path: String, file: StaticString = #filePath, line: UInt = #line) {
    let bless = ProcessInfo.processInfo.environment["BLOCKC_BLESS"] == "1"
    guard let data = FileManager.default.contents(atPath: path), let expected = String(data: data, encoding: .utf8)
    else {
        record(actual, path)
        XCTFail("golden \(path) was missing; recorded it — review and commit it", file: file, line: line)
        return
    }
    guard expected != actual else { return }
    if bless {
        record(actual, path)
        XCTFail("golden \(path) re-blessed; review the diff and run the tests again", file: file, line: line)
        return
    }
    XCTFail(
        "output differs from golden \(path) (BLOCKC_BLESS=1 to update):\n" + lineDiff(expected, actual), file: file,
        line: line)
}

private func record(_ text: String, _ path: String) {
    let dir = (path as NSString).deletingLastPathComponent
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

/// A minimal line diff: the first differing lines with a little context, `-` expected, `+` actual.
public func lineDiff(_ expected: String, _ actual: String, limit: Int = 40) -> String {
    let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let b = actual.split(separator: "\n", omittingEmptySubsequences: false)
    var out: [String] = []
    var i = 0
    var j = 0
    while (i < a.count || j < b.count) && out.count < limit {
        if i < a.count && j < b.count && a[i] == b[j] {
            i += 1
            j += 1
            continue
        }
        // Resynchronise on the next line of `b` that matches a[i] (or the reverse), within a window.
        if i < a.count, let k = b[j...].prefix(50).firstIndex(of: a[i]) {
            while j < k {
                out.append("+ line \(j + 1): \(b[j])")
                j += 1
            }
        } else if j < b.count, let k = a[i...].prefix(50).firstIndex(of: b[j]) {
            while i < k {
                out.append("- line \(i + 1): \(a[i])")
                i += 1
            }
        } else {
            if i < a.count {
                out.append("- line \(i + 1): \(a[i])")
                i += 1
            }
            if j < b.count {
                out.append("+ line \(j + 1): \(b[j])")
                j += 1
            }
        }
    }
    return out.joined(separator: "\n")
}
