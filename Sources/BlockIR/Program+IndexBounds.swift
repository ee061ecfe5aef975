extension Program {
    /// The `i32` inputs that a `gather` reads as its index block (through a `load` of the input
    /// or of a view of it), by name, with the size of the smallest axis they index: random
    /// inputs for them lie in `0 ..< bound`, so that every row they name exists.
    public func gatherIndexBounds() -> [String: Int] {
        var bounds: [String: Int] = [:]
        for kernel in kernels {
            var loadedFrom: [ValueID: TensorID] = [:]
            kernel.walk { inst in
                switch inst.op {
                case .load(let t, _):
                    if let r = inst.result { loadedFrom[r.id] = storage(of: t) }
                case .gather(let table, _, let index, let axis):
                    guard let t = loadedFrom[index], self[t].role == .input, self[t].elementType == .i32,
                        axis >= 0, axis < self[table].shape.count
                    else { return }
                    let size = self[table].shape[axis]
                    bounds[self[t].name] = Swift.min(bounds[self[t].name] ?? size, size)
                default: return
                }
            }
        }
        return bounds
    }
}
