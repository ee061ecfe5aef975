import BlockIR
import Foundation
import Graph
import Schedule

/// The memory an interpreter run needs, estimated before anything is allocated, and the limit
/// it must stay under: `--max-memory BYTES` (suffixes K, M, G, T: powers of 1024), by default
/// half the machine's physical memory. Going over is an error naming both numbers, instead of
/// a failed allocation that kills the process.
struct MemoryBudget {
    /// The most bytes a run may need.
    var limit: Int

    /// The budget of `--max-memory`, or half the physical memory.
    init(_ options: CommandLineOptions) {
        limit = options.maxMemory ?? Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)
    }

    /// The bytes of fp32 tensors of the given shapes, saturating at `Int.max`.
    static func bytes(of shapes: [[Int]]) -> Int {
        var total = 0
        for shape in shapes {
            var elements = 1
            for d in shape { elements = saturatingMultiply(elements, max(d, 0)) }
            total = saturatingAdd(total, saturatingMultiply(elements, 4))
        }
        return total
    }

    /// Every node of a graph: inputs, intermediates and outputs (the graph interpreter may
    /// hold all of them).
    static func bytes(of graph: Graph) -> Int { bytes(of: graph.nodes.map(\.shape)) }

    /// Every storage tensor of a block program (views share their base's storage), and
    /// `extraCopies` more copies of its outputs (read back from compiled code, say).
    static func bytes(of program: Program, extraOutputCopies: Int = 0) -> Int {
        let storage = program.tensors.filter { $0.viewOf == nil }.map(\.shape)
        let outputs = program.outputs.map { program[$0].shape }
        return bytes(of: storage + Array(repeating: outputs, count: extraOutputCopies).flatMap { $0 })
    }

    /// The most scratch one kernel of the compiled program allocates in global memory at a time:
    /// its operands packed once per call (`KernelSchedule.Prepack`, freed when it returns).
    static func scratchBytes(of schedule: ProgramSchedule) -> Int {
        var most = 0
        for kernel in schedule.kernels {
            var bytes = 0
            for p in kernel.prepacks { bytes = saturatingAdd(bytes, saturatingMultiply(p.words, 4)) }
            most = max(most, bytes)
        }
        return most
    }

    /// Throws when `bytes` exceed the limit; `what` says what would run.
    func check(_ bytes: Int, running what: String) throws(DriverError) {
        guard bytes > limit else { return }
        let need = bytes == Int.max ? "more than \(Self.format(Int.max))" : Self.format(bytes)
        var hint = "use smaller --dim values"
        if bytes < Int.max {
            let gibibytes = (bytes - 1) / (1 << 30) + 1
            hint += ", or, if the machine has that much memory, raise the limit with --max-memory \(gibibytes)G"
        }
        throw DriverError(
            "\(what) needs about \(need) for its tensors, more than the limit of \(Self.format(limit)); \(hint)")
    }

    /// `40000000032 bytes (37.3 GiB)`.
    static func format(_ bytes: Int) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var unit = -1
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit < 0 ? "\(bytes) bytes" : "\(bytes) bytes (" + String(format: "%.1f", value) + " \(units[unit]))"
    }

    /// Parses `8G`, `512M`, `1024`, `1.5G`, `64GiB`: bytes, or nil when malformed or not positive.
    static func parse(_ text: String) -> Int? {
        var number = text.uppercased()
        for suffix in ["IB", "B"] where number.hasSuffix(suffix) && number.count > suffix.count {
            number.removeLast(suffix.count)
            break
        }
        var scale = 1.0
        if let last = number.last,
            let power = ["K": 1, "M": 2, "G": 3, "T": 4, "P": 5].first(where: {
                $0.key == String(last)
            })?.value
        {
            scale = pow(1024, Double(power))
            number.removeLast()
        }
        guard let value = Double(number), value.isFinite, value > 0 else { return nil }
        let bytes = value * scale
        return bytes >= Double(Int.max) ? Int.max : max(1, Int(bytes))
    }

    private static func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
        let (r, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : r
    }

    static func saturatingAdd(_ a: Int, _ b: Int) -> Int {
        let (r, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : r
    }
}
