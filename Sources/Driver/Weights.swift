import BlockIR
import Foundation
import Interpreter
import ONNX

/// The values of a program's inputs that come with it rather than from `--input` or `--seed`:
/// an ONNX model's weights (its initializers), or `DIR/NAME.npy` under `--weights-dir` (the
/// files `blockc import` wrote for an imported `.graph`).
enum Weights {
    /// The weights for the inputs of `signature` that `--input` does not give, by name.
    static func load(
        _ pipeline: Pipeline, signature: [(name: String, shape: [Int], type: ElementType)],
        options: CommandLineOptions, console: Console
    ) throws(DriverError) -> [String: NDArray] {
        let given = Set(options.inputs.map(\.key))
        var out: [String: NDArray] = [:]
        if let imported = pipeline.imported {
            for w in imported.weights where !given.contains(w.name) {
                out[w.name] = NDArray(shape: w.shape, data: w.values, elementType: w.elementType)
            }
        }
        guard let dir = options.weightsDir else { return out }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DriverError(
                "--weights-dir \(dir): no such folder; give the folder 'blockc import --weights-dir' wrote")
        }
        var random: [String] = []
        for (name, shape, type) in signature where !given.contains(name) && out[name] == nil {
            let path = dir + "/" + name + ".npy"
            guard FileManager.default.fileExists(atPath: path) else {
                random.append(name)
                continue
            }
            out[name] = try read(path, name: name, shape: shape, type: type)
        }
        if !random.isEmpty {
            console.err(
                "note: --weights-dir \(dir) has no NAME.npy for \(random.map { "'\($0)'" }.joined(separator: ", ")); "
                    + "using random values (--seed) for them\n")
        }
        return out
    }

    /// An input read from a `.npy` file, checked against the shape and type the program expects.
    static func read(_ path: String, name: String, shape: [Int], type: ElementType) throws(DriverError) -> NDArray {
        let array: NDArray
        do {
            array = try NPY.readFile(path)
        } catch {
            throw DriverError(
                error.description.hasPrefix("error: ") ? String(error.description.dropFirst(7)) : error.message)
        }
        guard array.shape == shape else {
            throw DriverError("\(path): input '\(name)' has shape \(array.shape), the program expects \(shape)")
        }
        guard array.elementType == type else {
            throw DriverError(
                "\(path): input '\(name)' holds \(array.elementType) ('\(array.elementType.numpyDescr)'), "
                    + "the program expects \(type) ('\(type.numpyDescr)'); convert the array when saving it")
        }
        return array
    }
}
