extension CRuntime {
    /// Elementwise math: a vectorisable polynomial `exp` and the functions built on it.
    ///
    /// `blk_expf` reduces `x = n·ln2 + r` (Cody–Waite, |r| ≤ ln2/2), evaluates a degree-5
    /// polynomial of `e^r` (minimax for the relative error with `p(0) = 1`: 9.2e-8 in exact
    /// arithmetic, 1.6e-7 measured over 1.6·10^7 floats in [−87, 88.7]; the degree-6 Taylor
    /// polynomial it replaced, one FMA more, gave 2.3e-7) and scales by `2^n` through the
    /// exponent bits; it has no branches or calls, so gcc vectorises loops over it. `exp(-inf)`
    /// and every `x ≤ -87` give exactly 0, `x > 88.72` gives `inf`, NaN stays NaN. `blk_exp_row`
    /// applies it to a contiguous row: with AVX-512 the same reduction and polynomial on 16 lanes,
    /// `vscalefps` applying `2^n` in one instruction (gcc's vector code of the scalar function
    /// clamps with compare-and-blend pairs and builds `2^(n−1)` with integer ops), zero kept where
    /// `n = −126`; the emitter calls it for an `exp` whose operand and result are rows of unit
    /// stride (attention's `exp(s − m)`). `tanh`,
    /// `sigmoid`, `silu` and `gelu` follow `UnaryOp.apply` (gelu in its tanh form).
    ///
    /// `blk_logf`, `blk_log1pf`, `blk_sinf` and `blk_cosf` are branch-free for the same reason
    /// (libm's `logf`, `log1pf`, `sinf` and `cosf` are calls gcc does not vectorise without
    /// `-ffast-math`). `log`: `x = 2^e·m`, `m ∈ [√½, √2)`, `log m = 2s + 2s³/3 + …` with
    /// `s = (m−1)/(m+1)`, `|s| ≤ 0.1716` (degree 9 in `s`, relative error ≈ 1e-7); subnormals scaled
    /// first; `log 0 = −inf`, `log x<0 = NaN`, `log inf = inf`. `log1p(x) = log(u)·x/(u−1)` with
    /// `u = 1+x` (exact to rounding where `u` rounds, `x` where `u = 1`). `sin`/`cos`: `x = j·π/2 + r`
    /// in double (`j` the nearest integer, π/2 in two parts, both products inside `fma`), Taylor
    /// polynomials of degree 9 (sin) and 8 (cos) in float, the quadrant `j mod 4` choosing
    /// ±sin/±cos: within 2.3e-7 absolute of the correctly rounded value for `|x| < 10^15`
    /// (measured on 2·10^6 random arguments per decade); beyond 2^50 the reduction is not exact
    /// (a float there is spaced more than 2π apart) and the result is only kept within [−1, 1];
    /// `±inf` and NaN give NaN. `erf`: below |x| = 1 its Taylor series to x²³ (x·2/√π·Σ(−x²)ⁿ/(n!(2n+1))),
    /// above it Abramowitz–Stegun 7.1.26 (`1 − t·P(t)·e^(−x²)`, `t = 1/(1 + 0.3275911|x|)`, absolute error
    /// 1.5e-7), both computed and one chosen: within 2.4e-7 relative of erf over [−6, 6] (libm's `erff`
    /// is a call gcc does not vectorise, and GELU from ONNX is built on it); `±inf` gives ±1.
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
            float p = 8.29028618e-3f; /* minimax for relative error on |r| <= ln2/2, p(0) = 1 */
            p = fmaf(p, r, 4.18978781e-2f);
            p = fmaf(p, r, 1.66676357e-1f);
            p = fmaf(p, r, 4.99991506e-1f);
            p = fmaf(p, r, 9.99999702e-1f);
            p = fmaf(p, r, 1.0f);
            uint32_t u, bits;
            memcpy(&u, &nm, 4);
            bits = (u - 0x4B400000u + 126u) << 23; /* 2^(n-1); n >= -126 gives a field >= 0 */
            float scale;
            memcpy(&scale, &bits, 4);
            return (p + p) * scale;
        }
        /* y[c] = blk_expf(x[c]) for c < n (x and y may be the same row). With AVX-512 the same
           reduction and polynomial on 16 lanes, the scale applied by vscalefps instead of the
           exponent bits (zero where n = -126, as the bits give); elsewhere the scalar loop. */
        #ifdef __AVX512F__
        static inline __attribute__((always_inline)) __m512 blk_exp16(__m512 x) {
            x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x); /* a NaN x is the result of both */
            x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
            const __m512 shifter = _mm512_set1_ps(12582912.0f);
            __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter), shifter);
            __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693145751953125f), x);
            r = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.428606765330187045e-06f), r);
            __m512 p = _mm512_set1_ps(8.29028618e-3f);
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.18978781e-2f));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66676357e-1f));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.99991506e-1f));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.99999702e-1f));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
            __mmask16 kept = _mm512_cmp_ps_mask(n, _mm512_set1_ps(-126.0f), _CMP_NLE_UQ);
            return _mm512_maskz_mov_ps(kept, _mm512_scalef_ps(p, n));
        }
        static inline void blk_exp_row(const float *x, float *y, long n) {
            long c = 0;
            for (; c + 16 <= n; c += 16) _mm512_storeu_ps(y + c, blk_exp16(_mm512_loadu_ps(x + c)));
            if (c < n) {
                __mmask16 m = (__mmask16)((1u << (n - c)) - 1u);
                _mm512_mask_storeu_ps(y + c, m, blk_exp16(_mm512_maskz_loadu_ps(m, x + c)));
            }
        }
        #else
        static inline void blk_exp_row(const float *x, float *y, long n) {
        #pragma omp simd
            for (long c = 0; c < n; c++) y[c] = blk_expf(x[c]);
        }
        #endif
        static inline float blk_logf(float x) {
            int sub = x < 1.17549435e-38f;
            float xs = sub ? x * 8388608.0f : x;
            uint32_t u, mb;
            memcpy(&u, &xs, 4);
            int e = (int)((u >> 23) & 0xffu) - 127 - (sub ? 23 : 0);
            mb = (u & 0x007fffffu) | 0x3f800000u;
            float m;
            memcpy(&m, &mb, 4);
            int big = m > 1.41421356f;
            m = big ? m * 0.5f : m;
            float fe = (float)(e + big);
            float f = m - 1.0f;
            float s = f / (2.0f + f);
            float z = s * s;
            float r = z * (0.666666666666f + z * (0.4f + z * (0.285714285714f + z * 0.222222222222f)));
            float lm = fmaf(s, r, s + s);
            float y = fmaf(fe, 0.693145751953125f, fmaf(fe, 1.428606765330187045e-06f, lm));
            y = x == 0.0f ? -INFINITY : y;
            y = x < 0.0f ? NAN : y;
            y = x == INFINITY ? x : y;
            return x != x ? x : y;
        }
        static inline float blk_log1pf(float x) {
            float u = 1.0f + x;
            float d = u - 1.0f;
            float y = d == 0.0f ? x : blk_logf(u) * (x / d);
            return x == INFINITY ? x : y;
        }
        static inline float blk_erff(float x) {
            float a = fabsf(x), z = x * x;
            /* |x| < 1: x·2/√π·Σ (−z)^n / (n!(2n+1)), n ≤ 11 */
            float s = -1.0892221037148573e-09f;
            s = fmaf(s, z, 1.3122532963802806e-08f);
            s = fmaf(s, z, -1.4503852223150468e-07f);
            s = fmaf(s, z, 1.4589169000933706e-06f);
            s = fmaf(s, z, -1.3227513227513228e-05f);
            s = fmaf(s, z, 0.00010683760683760684f);
            s = fmaf(s, z, -0.0007575757575757576f);
            s = fmaf(s, z, 0.004629629629629629f);
            s = fmaf(s, z, -0.023809523809523808f);
            s = fmaf(s, z, 0.1f);
            s = fmaf(s, z, -0.3333333333333333f);
            s = fmaf(s, z, 1.0f);
            float small = 1.12837916709551257f * x * s;
            /* |x| ≥ 1: 1 − t·P(t)·e^(−x²), t = 1/(1 + 0.3275911|x|) (Abramowitz–Stegun 7.1.26) */
            float t = 1.0f / fmaf(0.3275911f, a, 1.0f);
            float q = fmaf(t, 1.061405429f, -1.453152027f);
            q = fmaf(q, t, 1.421413741f);
            q = fmaf(q, t, -0.284496736f);
            q = fmaf(q, t, 0.254829592f);
            float big = 1.0f - q * t * blk_expf(-z);
            big = x < 0.0f ? -big : big;
            float r = a < 1.0f ? small : big;
            return x != x ? x : r;
        }
        static inline float blk_sinq(float x, uint32_t shift) {
            double xd = (double)x;
            double j = __builtin_rint(xd * 0.63661977236758134308);
            float r = (float)fma(j, -6.12323399573676603587e-17, fma(j, -1.57079632679489655800, xd));
            r = r < -1.0f ? -1.0f : (r > 1.0f ? 1.0f : r); /* bounds the result where |x| > 2^50 */
            float z = r * r;
            float sn = fmaf(r * z, -1.6666666666666667e-1f + z * (8.3333333333333333e-3f
                + z * (-1.9841269841269841e-4f + z * 2.7557319223985891e-6f)), r);
            float cs = fmaf(z, -0.5f, 1.0f) + z * z * (4.1666666666666667e-2f
                + z * (-1.3888888888888889e-3f + z * 2.4801587301587302e-5f));
            uint32_t q = ((uint32_t)(int32_t)(j - 4.0 * __builtin_floor(j * 0.25)) + shift) & 3u;
            float v = (q & 1u) ? cs : sn;
            v = (q & 2u) ? -v : v;
            return fabsf(x) == INFINITY ? NAN : v;
        }
        static inline float blk_sinf(float x) { return blk_sinq(x, 0u); }
        static inline float blk_cosf(float x) { return blk_sinq(x, 1u); }
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
