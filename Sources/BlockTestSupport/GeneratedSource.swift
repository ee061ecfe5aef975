/// The two parts of a generated C or CUDA source, so their goldens compare each once: the
/// dialect's runtime (the `blk_*` helpers, the same text at the top of every source) and the
/// part generated for the program (kernels, entry point, launchers).
///
/// The emitter writes the runtime verbatim after the includes and a blank line, and a blank line
/// after it; the runtime's first line starts with `/* ---- runtime` and the first line after it
/// is a kernel's header comment (`/* kernel NAME: …`), or, for a program without kernels, the
/// entry point's (`/* The entry point…`, or CUDA's `/* ---- host…`).
public enum GeneratedSource {
    /// How the runtime's first line starts.
    public static let runtimeStart = "/* ---- runtime"
    /// How the first line after the runtime (and its blank line) can start.
    public static let afterRuntime = ["/* kernel ", "/* The entry point", "/* ---- host"]

    /// Splits a generated source into its runtime and the rest, where one line stands for the
    /// runtime: `/* ---- runtime: RUNTIME_GOLDEN ---- */`; `nil` when the markers are not found.
    /// Putting the runtime back in place of that line gives the source again.
    public static func split(_ text: String, runtimeGolden: String) -> (runtime: String, program: String)? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasPrefix(runtimeStart) }),
            let end = lines[(start + 1)...].firstIndex(where: { line in afterRuntime.contains { line.hasPrefix($0) } }),
            end - 1 > start, lines[end - 1].isEmpty
        else { return nil }
        let runtime = lines[start..<(end - 1)].joined(separator: "\n") + "\n"
        let program =
            (lines[..<start] + ["\(runtimeStart): \(runtimeGolden) ---- */"] + lines[(end - 1)...]).joined(
                separator: "\n")
        return (runtime, program)
    }

    /// The source again from its parts (the inverse of `split`): the tests check it, so any change
    /// of the source changes one of the parts.
    public static func join(runtime: String, program: String, runtimeGolden: String) -> String {
        program.replacingOccurrences(of: "\(runtimeStart): \(runtimeGolden) ---- */\n", with: runtime)
    }
}
