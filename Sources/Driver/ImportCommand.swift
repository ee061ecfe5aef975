import Foundation
import Graph
import Interpreter
import ONNX

extension Command {
    /// `blockc import model.onnx -o model.graph --weights-dir DIR`.
    static let importONNX = Command(
        name: "import", summary: "import an ONNX model as a .graph and its weights as .npy files",
        usage: """
            USAGE: blockc import MODEL.onnx [-o OUT.graph] [--weights-dir DIR] [--dim NAME=N]

            Imports an ONNX model as the equivalent .graph (to standard output, or the file -o
            names) and writes each of its weights (initializers, and constants the graph reads as
            data) as DIR/NAME.npy. The weights are named inputs of the graph, after the model's
            own inputs; 'run' and 'verify' read them back with --weights-dir DIR. Named
            (symbolic) dimensions of the model's inputs must be bound with --dim NAME=N. Every
            other command also takes the .onnx file directly, with its weights. See Docs/ONNX.md
            for the supported ops.
            """,
        options: [.dim, .output, .weightsDir]
    ) { options, console throws(DriverError) in
        let path = try options.inputFile(command: "import")
        guard path.hasSuffix(".onnx") else {
            throw DriverError("'import' reads an ONNX model (a .onnx file), got '\(path)'")
        }
        // Reads and imports only: nothing is written before the plan is checked.
        let pipeline = try Pipeline(path: path, options: options, console: console)
        guard let imported = pipeline.imported else { return }
        var plan = OutputPlan(options)
        if let dir = options.weightsDir {
            for w in imported.weights {
                plan.write("the weight file of '\(w.name)' (--weights-dir)", dir + "/" + w.name + ".npy")
            }
            plan.hint = "choose another -o or --weights-dir"
        }
        try plan.check()
        if let dir = options.weightsDir {
            let runner = RunCommand(options: options, console: console)
            try runner.makeDirectory(dir)
            for w in imported.weights {
                let array = NDArray(shape: w.shape, data: w.values, elementType: w.elementType)
                try OutputFile(dir + "/" + w.name + ".npy").write(NPY.write(array))
            }
        } else if !imported.weights.isEmpty {
            console.err(
                "note: the model's \(imported.weights.count) weights were not written; "
                    + "give --weights-dir DIR to write them as DIR/NAME.npy\n")
        }
        try emit(GraphPrinter.print(imported.graph), to: options.outputPath, console: console)
    }
}
