import Foundation

/// The files one command reads and writes, checked before anything is written: no output may
/// be an input, and no two outputs may be the same file. Paths are compared after resolving
/// symbolic links (of the file and of its folders), so a link to the input is caught too.
struct OutputPlan {
    /// A file with what it is, for messages (`"the output (-o)"`, `"the input file"`).
    struct Entry {
        var role: String
        var path: String
    }

    /// The files the command reads.
    var inputs: [Entry] = []
    /// The files the command writes (`-` is standard output and never clashes).
    var outputs: [Entry] = []
    /// What to say after the clash (how to avoid it).
    var hint = "choose another output path"

    /// The plan of a command's options: its input file and `--input` files, and `-o` when
    /// `withOutput` (the role of `-o` differs between commands).
    init(_ options: CommandLineOptions, withOutput: Bool = true) {
        for path in options.positional { read("the input file", path) }
        for (name, path) in options.inputs { read("the input file of '\(name)' (--input)", path) }
        if withOutput, let path = options.outputPath { write("the output (-o)", path) }
    }

    /// Adds an input.
    mutating func read(_ role: String, _ path: String) { inputs.append(Entry(role: role, path: path)) }

    /// Adds an output.
    mutating func write(_ role: String, _ path: String) { outputs.append(Entry(role: role, path: path)) }

    /// Throws when an output is an input or another output.
    func check() throws(DriverError) {
        var seen: [(entry: Entry, resolved: String, isInput: Bool)] = []
        for input in inputs where input.path != "-" {
            seen.append((input, Self.resolved(input.path), true))
        }
        for output in outputs where output.path != "-" {
            let resolved = Self.resolved(output.path)
            if let other = seen.first(where: { $0.resolved == resolved }) {
                let what = other.isInput ? "would overwrite" : "is the same file as"
                throw DriverError(
                    "\(output.role) '\(output.path)' \(what) \(other.entry.role) '\(other.entry.path)'; "
                        + "nothing was written; \(hint)")
            }
            seen.append((output, resolved, false))
        }
    }

    /// The absolute path of a file with every symbolic link resolved; for a file that does not
    /// exist yet, its resolved folder and its name.
    static func resolved(_ path: String) -> String {
        let followed = (try? OutputFile.followLinks(path)) ?? path
        let absolute = URL(fileURLWithPath: followed).standardizedFileURL.path
        if let real = realPath(absolute) { return real }
        let url = URL(fileURLWithPath: absolute)
        let folder = url.deletingLastPathComponent().path
        guard folder != absolute else { return absolute }
        return (realPath(folder) ?? resolved(folder)) + "/" + url.lastPathComponent
    }

    private static func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}
