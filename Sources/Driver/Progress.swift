import Foundation

/// Progress of a long interpreter run on standard error: one line rewritten in place
/// (`[3/8] kernel softmax_k2 (12 s)`), shown only when standard error is a terminal and the
/// run has taken more than a second, so pipes, files and tests never see it.
final class Progress {
    private let console: Console
    private let start = Date()
    private var shown = false

    private init(console: Console) { self.console = console }

    /// A progress line on the console's standard error, or nil when it is not a terminal.
    static func forStandardError(_ console: Console) -> Progress? {
        isatty(STDERR_FILENO) == 1 ? Progress(console: console) : nil
    }

    /// Reports that step `index` of `count` (named `name`) starts.
    func report(_ index: Int, _ count: Int, _ name: String) {
        let elapsed = Date().timeIntervalSince(start)
        guard elapsed >= 1 else { return }
        shown = true
        console.err("\r\u{1B}[K[\(index + 1)/\(count)] \(name) (\(Int(elapsed)) s)")
    }

    /// Clears the line once the run ends.
    func finish() {
        if shown { console.err("\r\u{1B}[K") }
        shown = false
    }
}
