import BlockIR
import Foundation

/// The data movement and arithmetic of one kernel (or of a whole program).
public struct KernelCost: Hashable, Sendable {
    /// The kernel's name (`total` for the program).
    public var name: String
    /// Bytes loaded from global memory: the valid elements of every executed `load` times their
    /// tensor's element size.
    public var globalReadBytes: Int
    /// Bytes stored to global memory: the valid elements of every executed `store` times their
    /// tensor's element size.
    public var globalWriteBytes: Int
    /// Floating-point operations: 2·m·n·k per `dot` over valid extents, 1 per valid result
    /// element of elementwise ops and masks, 1 per valid input element of a reduction.
    public var flops: Int
    /// The peak live bytes of the local tier (for the total: the maximum over kernels).
    public var localPeakBytes: Int

    /// Makes a cost record.
    public init(name: String, globalReadBytes: Int, globalWriteBytes: Int, flops: Int, localPeakBytes: Int) {
        self.name = name
        self.globalReadBytes = globalReadBytes
        self.globalWriteBytes = globalWriteBytes
        self.flops = flops
        self.localPeakBytes = localPeakBytes
    }
}

/// The data-movement report of a block program: per kernel and in total, the global bytes read
/// and written, the FLOPs and the local-tier peak.
///
/// `analyze` walks every kernel instance and loop iteration with concrete index values, tracking
/// block extents but computing no data (the interpreter's walk without data), so edge blocks
/// count only their valid elements.
public struct CostReport: Hashable, Sendable {
    /// One entry per kernel, in program order.
    public var kernels: [KernelCost]
    /// The sums over kernels (the local peak is the maximum), named `total`.
    public var total: KernelCost

    /// Makes a report from per-kernel costs, computing the total.
    public init(kernels: [KernelCost]) {
        self.kernels = kernels
        var total = KernelCost(name: "total", globalReadBytes: 0, globalWriteBytes: 0, flops: 0, localPeakBytes: 0)
        for k in kernels {
            total.globalReadBytes &+= k.globalReadBytes
            total.globalWriteBytes &+= k.globalWriteBytes
            total.flops &+= k.flops
            total.localPeakBytes = max(total.localPeakBytes, k.localPeakBytes)
        }
        self.total = total
    }

    /// Analyzes a program; `localPeak` gives each kernel's local-tier peak (the verifier's
    /// liveness analysis in the driver). A kernel the walk cannot execute (a malformed program)
    /// keeps the counts accumulated before the problem.
    public static func analyze(_ program: Program, localPeak: (Kernel) -> Int) -> CostReport {
        var costs: [KernelCost] = []
        var machine = try? BlockMachine(program: program, computesData: false)
        for kernel in program.kernels {
            if machine != nil {
                machine!.readBytes = 0
                machine!.writtenBytes = 0
                machine!.flops = 0
                if let compiled = try? KernelCompiler.compile(kernel, in: program) {
                    try? machine!.run(compiled)
                }
            }
            costs.append(
                KernelCost(
                    name: kernel.name, globalReadBytes: machine?.readBytes ?? 0,
                    globalWriteBytes: machine?.writtenBytes ?? 0, flops: machine?.flops ?? 0,
                    localPeakBytes: localPeak(kernel)))
        }
        return CostReport(kernels: costs)
    }

    /// An aligned table: one row per kernel and a total row; byte columns also in KiB/MiB/GiB.
    public var text: String {
        let header = ["kernel", "global read", "global write", "FLOPs", "local peak"]
        let rows = (kernels + [total]).map { k in
            [
                k.name, Self.bytes(k.globalReadBytes), Self.bytes(k.globalWriteBytes), Self.grouped(k.flops),
                Self.bytes(k.localPeakBytes),
            ]
        }
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = line(header) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for (k, row) in rows.enumerated() {
            if k == rows.count - 1 && !kernels.isEmpty {
                out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
            }
            out += line(row) + "\n"
        }
        return out
    }

    /// `{"kernels": [{"name": …, "global_read_bytes": …, "global_write_bytes": …, "flops": …,
    /// "local_peak_bytes": …}, …], "total": {…}}` on one line, followed by a newline.
    public var json: String {
        func fields(_ k: KernelCost) -> String {
            "\"global_read_bytes\": \(k.globalReadBytes), \"global_write_bytes\": \(k.globalWriteBytes), "
                + "\"flops\": \(k.flops), \"local_peak_bytes\": \(k.localPeakBytes)"
        }
        let list = kernels.map { "{\"name\": \(Self.jsonString($0.name)), \(fields($0))}" }.joined(separator: ", ")
        return "{\"kernels\": [\(list)], \"total\": {\(fields(total))}}\n"
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `1234567` → `1,234,567`.
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (k, c) in digits.enumerated() {
            if k > 0 && (digits.count - k) % 3 == 0 { out += "," }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// `33554432` → `33,554,432 (32.0 MiB)`; small counts have no unit.
    static func bytes(_ n: Int) -> String {
        let units: [(String, Double)] = [("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024)]
        for (unit, size) in units where Double(n) >= size {
            return grouped(n) + " (" + String(format: "%.1f", Double(n) / size) + " " + unit + ")"
        }
        return grouped(n)
    }
}
