/// The run-time check of segment offsets (cu_seqlens), shared by the interpreters and mirrored
/// by the C harness: `offsets[s] ..< offsets[s + 1]` are the positions of segment `s`, so the
/// elements must be non-decreasing and lie in `0 ... length`. Kernels never read a position
/// through the offsets, so bad offsets could not make them leave a tensor; the check turns them
/// into an error instead of an odd segmentation.
public enum SegmentOffsets {
    /// What is wrong with `values` as offsets into `length` positions, or nil when they are fine.
    public static func problem(_ values: [Float], length: Int, name: String) -> String? {
        for (k, v) in values.enumerated() {
            if v < 0 || v > Float(length) {
                return "input '\(name)' holds segment offsets into \(length) positions, but element \(k) is "
                    + "\(Int(v)), outside 0 ... \(length); give non-decreasing offsets that end at most at \(length)"
            }
            if k > 0 && v < values[k - 1] {
                return "input '\(name)' holds segment offsets, but element \(k) (\(Int(v))) is below element "
                    + "\(k - 1) (\(Int(values[k - 1]))); give non-decreasing offsets"
            }
        }
        return nil
    }
}

extension Program {
    /// The inputs that hold segment offsets, by name, with the positions they split.
    public var segmentOffsetInputs: [String: Int] {
        var out: [String: Int] = [:]
        for id in inputs { if let n = self[id].offsetsInto { out[self[id].name] = n } }
        return out
    }
}
