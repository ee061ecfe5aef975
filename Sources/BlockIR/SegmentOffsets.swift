/// The run-time check of segment offsets (cu_seqlens), shared by the interpreters and mirrored
/// by the C harness: `offsets[s] ..< offsets[s + 1]` are the positions of segment `s`, so the
/// elements must be non-decreasing and lie in `0 ... length`. Kernels never read a position
/// through the offsets, so bad offsets could not make them leave a tensor; the check turns them
/// into an error instead of an odd segmentation.
public enum SegmentOffsets {
    /// What is wrong with `values` as offsets into `length` positions, or nil when they are fine.
    ///
    /// With a `maxLength` (`same_segment(…, max_len=L)`), every segment must also hold at most
    /// `maxLength` positions, counted as `same_segment` assigns them: `D` offsets-pairs give `D`
    /// segments, the first from position 0 to `offsets[1]`, segment `s` from `offsets[s]` to
    /// `offsets[s + 1]`, the last from `offsets[D − 1]` to `length` (positions before
    /// `offsets[0]` or from `offsets[D]` on belong to the first or the last segment).
    public static func problem(_ values: [Float], length: Int, maxLength: Int? = nil, name: String) -> String? {
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
        if let m = maxLength, let (s, start, end) = longSegment(values, length: length, maxLength: m) {
            return "input '\(name)' holds segments of at most \(m) positions (max_len), but segment \(s) "
                + "(positions \(start) ..< \(end)) holds \(end - start); give offsets whose segments hold at most "
                + "\(m) positions, or compile with a larger max_len"
        }
        return nil
    }

    /// The first segment (number, first position, end) holding more than `maxLength` positions,
    /// as `problem` counts them; nil when there is none. The offsets must be valid otherwise.
    public static func longSegment(_ values: [Float], length: Int, maxLength: Int) -> (Int, Int, Int)? {
        let segments = Swift.max(1, values.count - 1)
        for s in 0..<segments {
            let start = s == 0 ? 0 : Int(values[s])
            let end = s == segments - 1 ? length : Int(values[s + 1])
            if end - start > maxLength { return (s, start, end) }
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

    /// The segment-offsets inputs with a most positions per segment (`max_len`), by name.
    public var segmentMaxLengths: [String: Int] {
        var out: [String: Int] = [:]
        for id in inputs where self[id].offsetsInto != nil {
            if let m = self[id].segmentMaxLength { out[self[id].name] = m }
        }
        return out
    }
}
