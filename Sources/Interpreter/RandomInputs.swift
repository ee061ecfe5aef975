import BlockIR
import Foundation

/// Deterministic pseudo-random inputs for `blockc run` and the differential tests.
///
/// The generator is SplitMix64 (Steele, Lea and Flood, 2014) seeded from `(seed, stream)`, and
/// standard-normal values come from the Box–Muller transform over pairs of 53-bit uniform doubles:
///
/// ```
/// state₀ = mix(seed ⊕ mix(stream + 0x632BE59BD9B4E019))
/// state₊ = state + 0x9E3779B97F4A7C15, output = mix(state₊)
/// u₁ = (output₁ >> 11 + 1) · 2⁻⁵³ ∈ (0, 1],  u₂ = (output₂ >> 11) · 2⁻⁵³ ∈ [0, 1)
/// z₂ₚ = r·cos(2πu₂), z₂ₚ₊₁ = r·sin(2πu₂) with r = √(−2 ln u₁), rounded to fp32
/// ```
///
/// where `mix` is SplitMix64's finalizer. The integer part is exact on every platform; the
/// transcendental functions run in double precision and the results are rounded to fp32, so
/// values agree across platforms unless the C libraries' `log`/`cos`/`sin` differ by enough to
/// change the fp32 rounding (not observed with glibc and Apple's libm). The driver passes the
/// input's index as `stream`, so every input of a program gets an independent sequence.
public enum RandomInputs {
    /// A SplitMix64 generator.
    struct SplitMix64 {
        /// The state, advanced by the golden-ratio increment.
        var state: UInt64

        /// SplitMix64's output finalizer.
        static func mix(_ x: UInt64) -> UInt64 {
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// A generator for one `(seed, stream)` pair.
        init(seed: UInt64, stream: UInt64) {
            state = Self.mix(seed ^ Self.mix(stream &+ 0x632B_E59B_D9B4_E019))
        }

        /// The next 64 random bits.
        mutating func next() -> UInt64 {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            return Self.mix(state)
        }
    }

    /// Random values of an element type: standard-normal values stored as the type (rounded to
    /// f16 or bf16) for floating-point types; for `i32`, the standard-normal values times 8
    /// truncated toward zero (small signed integers); for `bool`, whether the value is positive
    /// (about half true). The same for the same `(shape, type, seed, stream)`. An `i32` input
    /// with a `bound` (the rows a `gather` may index: `Program.gatherIndexBounds`) instead gets
    /// uniform integers in `0 ..< bound`: `next() mod bound` of the generator of
    /// `(seed, stream)`. A rank-1 `i32` input of segment offsets into `offsetsInto` positions
    /// (`GlobalTensor.offsetsInto`) gets valid ones: 0, then sorted uniform integers in
    /// `0 ... offsetsInto` (`next() mod (offsetsInto + 1)`), then `offsetsInto`. With a
    /// `maxSegment` that `D = count − 1` segments can meet (`D·maxSegment ≥ offsetsInto`), each
    /// segment's length in turn is uniform among those that leave the rest coverable
    /// (`next() mod` the choices), so every segment holds at most `maxSegment` positions.
    public static func values(
        shape: [Int], type: ElementType, seed: UInt64, stream: UInt64, bound: Int? = nil, offsetsInto: Int? = nil,
        maxSegment: Int? = nil
    ) -> NDArray {
        if type == .i32, let n = offsetsInto, n >= 0, shape.count == 1, shape[0] >= 2, let m = maxSegment, m >= 1,
            (shape[0] - 1) * m >= n
        {
            var generator = SplitMix64(seed: seed, stream: stream)
            let segments = shape[0] - 1
            var data: [Float] = [0]
            var remaining = n
            for s in 0..<segments {
                let low = Swift.max(0, remaining - (segments - 1 - s) * m)
                let high = Swift.min(m, remaining)
                let length = low + Int(generator.next() % UInt64(high - low + 1))
                remaining -= length
                data.append(Float(n - remaining))
            }
            var a = NDArray(shape: shape, data: data)
            a.elementType = .i32
            return a
        }
        if type == .i32, let n = offsetsInto, n >= 0, shape.count == 1, shape[0] >= 2 {
            var generator = SplitMix64(seed: seed, stream: stream)
            let inner = (0..<(shape[0] - 2)).map { _ in Float(generator.next() % UInt64(n + 1)) }.sorted()
            var a = NDArray(shape: shape, data: [0] + inner + [Float(n)])
            a.elementType = .i32
            return a
        }
        if type == .i32, let bound, bound > 0 {
            var generator = SplitMix64(seed: seed, stream: stream)
            let count = NDArray.elementCount(of: shape.map { max(0, $0) })
            var data = [Float](repeating: 0, count: count)
            for k in 0..<count { data[k] = Float(generator.next() % UInt64(bound)) }
            var a = NDArray(shape: shape.map { max(0, $0) }, data: data)
            a.elementType = .i32
            return a
        }
        var a = standardNormal(shape: shape, seed: seed, stream: stream)
        switch type {
        case .f32: break
        case .f16, .bf16: a.data = a.data.map(type.stored)
        case .i32: a.data = a.data.map { ElementType.i32.stored($0 * 8) }
        case .bool: a.data = a.data.map { $0 > 0 ? 1 : 0 }
        }
        a.elementType = type
        return a
    }

    /// An array of `shape` filled with standard-normal values, the same for the same
    /// `(shape, seed, stream)`; a prefix of a longer array's data for a smaller shape.
    public static func standardNormal(shape: [Int], seed: UInt64, stream: UInt64) -> NDArray {
        let count = NDArray.elementCount(of: shape.map { max(0, $0) })
        var data = [Float](repeating: 0, count: count)
        var generator = SplitMix64(seed: seed, stream: stream)
        let scale = 1.0 / 9_007_199_254_740_992.0  // 2⁻⁵³
        var k = 0
        while k < count {
            let u1 = (Double(generator.next() >> 11) + 1) * scale
            let u2 = Double(generator.next() >> 11) * scale
            let r = (-2 * Foundation.log(u1)).squareRoot()
            let theta = 2 * Double.pi * u2
            data[k] = Float(r * Foundation.cos(theta))
            if k + 1 < count { data[k + 1] = Float(r * Foundation.sin(theta)) }
            k += 2
        }
        return NDArray(shape: shape.map { max(0, $0) }, data: data)
    }
}
