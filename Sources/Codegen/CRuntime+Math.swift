extension CRuntime {
    /// Elementwise math: a vectorisable polynomial `exp` and the functions built on it.
    ///
    /// `blk_expf` reduces `x = n·ln2 + r` (Cody–Waite, |r| ≤ ln2/2), evaluates a degree-6
    /// Taylor polynomial of `e^r` (relative error ≈ 1e-7) and scales by `2^n` through the
    /// exponent bits; it has no branches or calls, so gcc vectorises loops over it. `exp(-inf)`
    /// and every `x ≤ -87` give exactly 0, `x > 88.72` gives `inf`, NaN stays NaN. `tanh`,
    /// `sigmoid`, `silu` and `gelu` follow `UnaryOp.apply` (gelu in its tanh form).
    public static let math = #"""
        /* ---- runtime: math ---- */
        static inline float blk_expf(float x) {
            x = x < -87.0f ? -87.0f : x;
            x = x > 88.8f ? 88.8f : x;
            const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
            float nm = x * 1.44269504088896341f + shifter;
            float n = nm - shifter;
            float r = fmaf(n, -0.693145751953125f, x);
            r = fmaf(n, -1.428606765330187045e-06f, r);
            float p = 1.3888888888888889e-3f;
            p = fmaf(p, r, 8.3333333333333333e-3f);
            p = fmaf(p, r, 4.1666666666666667e-2f);
            p = fmaf(p, r, 1.6666666666666667e-1f);
            p = fmaf(p, r, 0.5f);
            p = fmaf(p, r, 1.0f);
            p = fmaf(p, r, 1.0f);
            uint32_t u, bits;
            memcpy(&u, &nm, 4);
            bits = (u - 0x4B400000u + 126u) << 23; /* 2^(n-1); n >= -126 gives a field >= 0 */
            float scale;
            memcpy(&scale, &bits, 4);
            return (p + p) * scale;
        }
        static inline float blk_tanhf(float x) {
            float a = fabsf(x);
            float e = blk_expf(-2.0f * a);
            float t = (1.0f - e) / (1.0f + e);
            return x < 0.0f ? -t : (x == x ? t : x);
        }
        static inline float blk_sigmoidf(float x) { return 1.0f / (1.0f + blk_expf(-x)); }
        static inline float blk_siluf(float x) { return x / (1.0f + blk_expf(-x)); }
        static inline float blk_geluf(float x) {
            const float c = 0.79788456f; /* sqrt(2/pi) */
            return 0.5f * x * (1.0f + blk_tanhf(c * (x + 0.044715f * x * x * x)));
        }
        """#
}
