import Foundation

/// The blockc command-line driver: `blockc SUBCOMMAND [options] FILE`.
public enum Driver {
    /// Runs the process's command line and exits with its status.
    public static func main() {
        let status = run(Array(CommandLine.arguments.dropFirst()), console: .standard())
        exit(status)
    }

    /// Runs one command line, writing to `console`; returns the exit status (0 success,
    /// 1 user error).
    static func run(_ arguments: [String], console: Console) -> Int32 {
        guard let name = arguments.first else {
            console.err(Help.overview)
            return 1
        }
        if name == "--help" || name == "-h" || name == "help" {
            if arguments.count > 1, let command = Command.named(arguments[1]) {
                console.out(command.help)
            } else {
                console.out(Help.overview)
            }
            return 0
        }
        if name == "--version" {
            console.out("blockc \(Help.version)\n")
            return 0
        }
        guard let command = Command.named(name) else {
            console.err("error: unknown subcommand '\(name)'; run 'blockc --help' for the list\n")
            return 1
        }
        do {
            let options = try CommandLineOptions.parse(
                Array(arguments.dropFirst()), allowed: command.options, command: command.name)
            if options.help {
                console.out(command.help)
                return 0
            }
            try command.run(options, console)
            return 0
        } catch {
            console.err(error.text + "\n")
            return 1
        }
    }
}
