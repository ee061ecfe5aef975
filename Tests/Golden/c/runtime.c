/* ---- runtime: allocation and index arithmetic ---- */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
static inline float *blk_alloc(size_t bytes) {
    void *p = NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) abort();
    return (float *)p;
}
/* A workspace a kernel keeps between calls (its operands packed once per call): the pages
   stay mapped, so a call does not fault them in again. A call that finds it taken by a
   concurrent call allocates its own copy and frees it on return. */
#include <stdatomic.h>
typedef struct {
    atomic_int busy;
    size_t bytes;
    void *p;
} blk_workspace;
static inline void *blk_workspace_take(blk_workspace *w, size_t bytes) {
    int idle = 0;
    if (!atomic_compare_exchange_strong(&w->busy, &idle, 1)) return blk_alloc(bytes);
    if (w->bytes < bytes) {
        free(w->p);
        w->p = blk_alloc(bytes);
        w->bytes = bytes;
    }
    return w->p;
}
static inline void blk_workspace_give(blk_workspace *w, void *p) {
    if (p == w->p) atomic_store(&w->busy, 0);
    else free(p);
}
/* floor division (rounds toward minus infinity, as IndexExpr does) */
static inline long blk_floordiv(long a, long b) {
    long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline long blk_imin(long a, long b) { return a < b ? a : b; }
static inline long blk_imax(long a, long b) { return a > b ? a : b; }
/* the valid elements of a slice `start +: n` of an axis of size d */
static inline long blk_extent(long d, long start, long n) {
    long e = d - start;
    return e < 0 ? 0 : (e > n ? n : e);
}
/* max/min that return NaN when either operand is NaN (fmaxf does not); only selects, so
   they vectorise: a NaN `b` fails the comparison and is chosen, a NaN `a` is kept */
static inline float blk_maxf(float a, float b) {
    float m = a > b ? a : b;
    return a != a ? a : m;
}
static inline float blk_minf(float a, float b) {
    float m = a < b ? a : b;
    return a != a ? a : m;
}
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
/* ---- runtime: contiguous reductions (vectorised; max propagates NaN) ---- */
#ifdef __AVX512F__
/* A row's 16 partial results: lane l combines the elements c ≡ l mod 16 (the maxima also
   give, in *nan, the lanes that saw a NaN, which _mm512_max_ps does not keep) */
static inline __m512 blk_lanes_sum(const float *x, long n) {
    __m512 acc = _mm512_setzero_ps();
    long c = 0;
    for (; c + 16 <= n; c += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + c));
    if (c < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - c)) - 1u), x + c));
    return acc;
}
static inline __m512 blk_lanes_max(const float *x, long n, __mmask16 *nan) {
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    __m512 acc = lowest;
    __mmask16 seen = 0;
    long c = 0;
    for (; c + 16 <= n; c += 16) {
        __m512 v = _mm512_loadu_ps(x + c);
        seen |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        acc = _mm512_max_ps(acc, v);
    }
    if (c < n) {
        __m512 v = _mm512_mask_loadu_ps(lowest, (__mmask16)((1u << (n - c)) - 1u), x + c);
        seen |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        acc = _mm512_max_ps(acc, v);
    }
    *nan = seen;
    return acc;
}
static inline float blk_sum_contig(const float *x, long n) { return _mm512_reduce_add_ps(blk_lanes_sum(x, n)); }
static inline float blk_max_contig(const float *x, long n) {
    __mmask16 nan;
    __m512 acc = blk_lanes_max(x, n, &nan);
    return nan ? NAN : _mm512_reduce_max_ps(acc);
}
/* The partials stored at `lanes` (64-byte aligned); blk_*_of_lanes combines 16 rows'
   partials at once, so no row waits on a horizontal reduction of its own. A lane that saw
   a NaN holds NaN. */
static inline void blk_sum_lanes(const float *x, long n, float *lanes) { _mm512_store_ps(lanes, blk_lanes_sum(x, n)); }
static inline void blk_max_lanes(const float *x, long n, float *lanes) {
    __mmask16 nan;
    __m512 acc = blk_lanes_max(x, n, &nan);
    _mm512_store_ps(lanes, _mm512_mask_blend_ps(nan, acc, _mm512_set1_ps(NAN)));
}
/* the larger of a and b lane by lane, NaN where either is NaN */
static inline __m512 blk_max16(__m512 a, __m512 b) {
    return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}
/* out[r] = the combination of row r's 16 partials, r < rows (≤ 16): a transposing tree
   (pairs of rows, then pairs of 64-bit halves, then 128-bit quarters), 15 combines */
static inline __attribute__((always_inline)) void blk_of_lanes16(const float *lanes, long rows, float *out,
                                                                 const int max) {
    __m512 v[16], t[8], u[4], w[2];
    const __m512 identity = _mm512_set1_ps(max ? -INFINITY : 0.0f);
    for (int r = 0; r < 16; r++) v[r] = r < rows ? _mm512_load_ps(lanes + 16 * r) : identity;
#define BLK_COMBINE(a, b) (max ? blk_max16((a), (b)) : _mm512_add_ps((a), (b)))
    for (int p = 0; p < 8; p++)
        t[p] = BLK_COMBINE(_mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]), _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
    for (int p = 0; p < 4; p++) {
        __m512d a = _mm512_castps_pd(t[2 * p]), b = _mm512_castps_pd(t[2 * p + 1]);
        u[p] = BLK_COMBINE(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    for (int p = 0; p < 2; p++)
        w[p] = BLK_COMBINE(_mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], 0x88),
                           _mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], 0xDD));
    __m512 all = BLK_COMBINE(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xDD));
#undef BLK_COMBINE
    _mm512_mask_storeu_ps(out, (__mmask16)(rows >= 16 ? 0xFFFF : (1u << rows) - 1u), all);
}
static inline void blk_sum_of_lanes(const float *lanes, long rows, float *out) {
    for (long r0 = 0; r0 < rows; r0 += 16) blk_of_lanes16(lanes + 16 * r0, rows - r0, out + r0, 0);
}
static inline void blk_max_of_lanes(const float *lanes, long rows, float *out) {
    for (long r0 = 0; r0 < rows; r0 += 16) blk_of_lanes16(lanes + 16 * r0, rows - r0, out + r0, 1);
}
#else
static inline float blk_sum_contig(const float *x, long n) {
    float p[16] = {0};
    long c = 0;
    for (; c + 16 <= n; c += 16)
        for (int l = 0; l < 16; l++) p[l] += x[c + l];
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++) p[l] += p[l + w];
    float s = p[0];
    for (long t = 0; t < n - c; t++) s += x[c + t]; /* not `c < n`: gcc 12 warns of overflow there */
    return s;
}
static inline float blk_max_contig(const float *x, long n) {
    float s = -INFINITY;
    for (long c = 0; c < n; c++) s = blk_maxf(s, x[c]);
    return s;
}
/* without AVX-512 a row's result sits in lane 0, the other lanes hold the identity */
static inline void blk_sum_lanes(const float *x, long n, float *lanes) {
    for (int l = 1; l < 16; l++) lanes[l] = 0.0f;
    lanes[0] = blk_sum_contig(x, n);
}
static inline void blk_max_lanes(const float *x, long n, float *lanes) {
    for (int l = 1; l < 16; l++) lanes[l] = -INFINITY;
    lanes[0] = blk_max_contig(x, n);
}
static inline void blk_sum_of_lanes(const float *lanes, long rows, float *out) {
    for (long r = 0; r < rows; r++) out[r] = blk_sum_contig(lanes + 16 * r, 16);
}
static inline void blk_max_of_lanes(const float *lanes, long rows, float *out) {
    for (long r = 0; r < rows; r++) out[r] = blk_max_contig(lanes + 16 * r, 16);
}
#endif
/* out[r] = the sum (the maximum) of row r's n contiguous elements, r < rows (rows ld apart),
   16 rows at a time through their lanes */
static inline __attribute__((always_inline)) void blk_reduce_rows(const float *x, long ld, long rows, long n,
                                                                  float *out, const int max) {
    float lanes[256] __attribute__((aligned(64)));
    for (long r0 = 0; r0 < rows; r0 += 16) {
        long m = rows - r0 < 16 ? rows - r0 : 16;
        for (long r = 0; r < m; r++) (max ? blk_max_lanes : blk_sum_lanes)(x + (r0 + r) * ld, n, lanes + 16 * r);
        (max ? blk_max_of_lanes : blk_sum_of_lanes)(lanes, m, out + r0);
    }
}
static inline void blk_sum_rows(const float *x, long ld, long rows, long n, float *out) {
    blk_reduce_rows(x, ld, rows, n, out, 0);
}
static inline void blk_max_rows(const float *x, long ld, long rows, long n, float *out) {
    blk_reduce_rows(x, ld, rows, n, out, 1);
}
/* ---- runtime: block dot ---- */
#ifdef __AVX512F__
/* v[r] lane c becomes v[c] lane r (a 16 x 16 transpose of 32-bit elements) */
static inline __attribute__((always_inline)) void blk_transpose16(__m512i *v) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; e++) {
        __m512i s0 = _mm512_shuffle_i32x4(v[e], v[4 + e], 0x44);
        __m512i s1 = _mm512_shuffle_i32x4(v[e], v[4 + e], 0xEE);
        __m512i s2 = _mm512_shuffle_i32x4(v[8 + e], v[12 + e], 0x44);
        __m512i s3 = _mm512_shuffle_i32x4(v[8 + e], v[12 + e], 0xEE);
        t[e] = _mm512_shuffle_i32x4(s0, s2, 0x88);
        t[4 + e] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
        t[8 + e] = _mm512_shuffle_i32x4(s1, s3, 0x88);
        t[12 + e] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
    }
    for (int i = 0; i < 16; i++) v[i] = t[i];
}
#endif
/* S[k][j] = B[k*ks + j*js] for k < kk, j < n: gives a unit-stride B to blk_gemm */
static inline void blk_pack(long kk, long n, const float *restrict B, long ks, long js,
                            float *restrict S, long lds) {
    if (js == 1) {
        /* rows far apart: copy row by row */
        for (long k = 0; k < kk; k++) {
            const float *restrict b = B + k * ks;
            float *restrict s = S + k * lds;
#pragma omp simd
            for (long j = 0; j < n; j++) s[j] = b[j];
        }
        return;
    }
    for (long k0 = 0; k0 < kk; k0 += 16)
        for (long j0 = 0; j0 < n; j0 += 16) {
            long k1 = k0 + 16 < kk ? k0 + 16 : kk, j1 = j0 + 16 < n ? j0 + 16 : n;
#ifdef __AVX512F__
            if (ks == 1 && k1 - k0 == 16 && j1 - j0 == 16) {
                /* a transposed operand (K in Q·Kᵀ): whole 16x16 tiles in registers */
                __m512i v[16];
                for (int r = 0; r < 16; r++) v[r] = _mm512_loadu_si512(B + k0 + (j0 + r) * js);
                blk_transpose16(v);
                for (int c = 0; c < 16; c++) _mm512_storeu_si512(S + (k0 + c) * lds + j0, v[c]);
                continue;
            }
#endif
            for (long j = j0; j < j1; j++)
                for (long k = k0; k < k1; k++) S[k * lds + j] = B[k * ks + j * js];
        }
}
#ifdef __AVX512F__
static inline __attribute__((always_inline)) void blk_gemm_tile(
    const int R, long kk, const float *restrict A, long ars, long aks, const float *restrict B, long ldb,
    float *restrict C, long ldc, __mmask16 m0, __mmask16 m1, int accumulate, const float *rs) {
    __m512 c0[8], c1[8];
    for (int r = 0; r < R; r++) {
        c0[r] = _mm512_setzero_ps();
        c1[r] = _mm512_setzero_ps();
    }
    for (long k = 0; k < kk; k++) {
        const float *b = B + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        const float *a = A + k * aks;
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        float *c = C + r * ldc;
        if (accumulate) {
            __m512 o0 = _mm512_maskz_loadu_ps(m0, c), o1 = _mm512_maskz_loadu_ps(m1, c + 16);
            if (rs) {
                o0 = _mm512_mul_ps(o0, _mm512_set1_ps(rs[r]));
                o1 = _mm512_mul_ps(o1, _mm512_set1_ps(rs[r]));
            }
            c0[r] = _mm512_add_ps(c0[r], o0);
            c1[r] = _mm512_add_ps(c1[r], o1);
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}
/* R (<= 6) rows x 64 columns: 24 zmm accumulators, 4 loads and 6 broadcasts per 24 FMAs */
static inline __attribute__((always_inline)) void blk_gemm_tile64(
    const int R, long kk, const float *restrict A, long ars, long aks, const float *restrict B, long ldb,
    float *restrict C, long ldc, const __mmask16 *m, int accumulate, const float *rs) {
    __m512 c[6][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) c[r][q] = _mm512_setzero_ps();
    for (long k = 0; k < kk; k++) {
        const float *b = B + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m[0], b);
        __m512 b1 = _mm512_maskz_loadu_ps(m[1], b + 16);
        __m512 b2 = _mm512_maskz_loadu_ps(m[2], b + 32);
        __m512 b3 = _mm512_maskz_loadu_ps(m[3], b + 48);
        const float *a = A + k * aks;
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars]);
            c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
            c[r][2] = _mm512_fmadd_ps(av, b2, c[r][2]);
            c[r][3] = _mm512_fmadd_ps(av, b3, c[r][3]);
        }
    }
    for (int r = 0; r < R; r++) {
        float *cr = C + r * ldc;
        for (int q = 0; q < 4; q++) {
            if (accumulate) {
                __m512 o = _mm512_maskz_loadu_ps(m[q], cr + 16 * q);
                if (rs) o = _mm512_mul_ps(o, _mm512_set1_ps(rs[r]));
                c[r][q] = _mm512_add_ps(c[r][q], o);
            }
            _mm512_mask_storeu_ps(cr + 16 * q, m[q], c[r][q]);
        }
    }
}
static inline __mmask16 blk_mask(long w) {
    return (__mmask16)(w >= 16 ? 0xFFFF : (w > 0 ? ((1u << w) - 1u) : 0u));
}
/* Prefetches the next block a loop reads (pf: pfr rows of pfc floats, pfld apart) into L1, a
   few cache lines before each register tile, so the loads overlap the FMAs. */
typedef struct { const float *p; long rows, ld, lines, row, line, per; } blk_prefetcher;
static inline blk_prefetcher blk_prefetch_plan(const float *pf, long pfr, long pfld, long pfc, long tiles) {
    blk_prefetcher q = {pf, pfr, pfld, (pfc + 15) / 16, 0, 0, 0};
    if (pf && tiles > 0) q.per = (pfr * q.lines + tiles - 1) / tiles;
    return q;
}
static inline void blk_prefetch_step(blk_prefetcher *q) {
    for (long t = 0; t < q->per && q->row < q->rows; t++) {
        _mm_prefetch((const char *)(q->p + q->row * q->ld + 16 * q->line), _MM_HINT_T0);
        if (++q->line == q->lines) { q->line = 0; q->row++; }
    }
}
static inline __attribute__((always_inline)) void blk_gemm_impl(
    long m, long n, long kk, const float *restrict A, long ars, long aks, const float *restrict B, long ldb,
    float *restrict C, long ldc, int accumulate, const float *pf, long pfr, long pfld, long pfc,
    const float *rs) {
    blk_prefetcher q = blk_prefetch_plan(pf, pfr, pfld, pfc, ((n + 63) / 64) * ((m + 5) / 6));
    long js = 0;
    for (; js + 32 < n; js += 64) {
        long w = n - js < 64 ? n - js : 64;
        __mmask16 mk[4] = {blk_mask(w), blk_mask(w - 16), blk_mask(w - 32), blk_mask(w - 48)};
        long i0 = 0;
        for (; i0 + 6 <= m; i0 += 6) {
            blk_prefetch_step(&q);
            blk_gemm_tile64(6, kk, A + i0 * ars, ars, aks, B + js, ldb, C + i0 * ldc + js, ldc, mk, accumulate,
                            rs ? rs + i0 : NULL);
        }
        const float *a = A + i0 * ars, *ra = rs ? rs + i0 : NULL;
        float *c = C + i0 * ldc + js;
        switch (m - i0) {
        case 5: blk_gemm_tile64(5, kk, a, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ra); break;
        case 4: blk_gemm_tile64(4, kk, a, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ra); break;
        case 3: blk_gemm_tile64(3, kk, a, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ra); break;
        case 2: blk_gemm_tile64(2, kk, a, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ra); break;
        case 1: blk_gemm_tile64(1, kk, a, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ra); break;
        default: break;
        }
    }
    for (long j0 = js; j0 < n; j0 += 32) {
        long w = n - j0 < 32 ? n - j0 : 32;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : ((1u << w) - 1u));
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : (w > 16 ? ((1u << (w - 16)) - 1u) : 0u));
        long i0 = 0;
        for (; i0 + 8 <= m; i0 += 8) {
            blk_prefetch_step(&q);
            blk_gemm_tile(8, kk, A + i0 * ars, ars, aks, B + j0, ldb, C + i0 * ldc + j0, ldc, m0, m1,
                          accumulate, rs ? rs + i0 : NULL);
        }
        const float *a = A + i0 * ars, *ra = rs ? rs + i0 : NULL;
        float *c = C + i0 * ldc + j0;
        switch (m - i0) {
        case 7: blk_gemm_tile(7, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 6: blk_gemm_tile(6, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 5: blk_gemm_tile(5, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 4: blk_gemm_tile(4, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 3: blk_gemm_tile(3, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 2: blk_gemm_tile(2, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        case 1: blk_gemm_tile(1, kk, a, ars, aks, B + j0, ldb, c, ldc, m0, m1, accumulate, ra); break;
        default: break;
        }
    }
}
static __attribute__((noinline)) void blk_gemm(long m, long n, long kk, const float *restrict A, long ars, long aks,
                     const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate) {
    blk_gemm_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate, NULL, 0, 0, 0, NULL);
}
/* blk_gemm that also prefetches the block the next loop iteration reads */
static __attribute__((noinline)) void blk_gemm_pf(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate,
                        const float *pf, long pfr, long pfld, long pfc) {
    blk_gemm_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate, pf, pfr, pfld, pfc, NULL);
}
/* C[i][j] = rs[i]·C[i][j] + Σ_k A(i,k)·B[k][j]: an accumulator rescaled row by row as the tiles load it */
static __attribute__((noinline)) void blk_gemm_rs(long m, long n, long kk, const float *restrict A, long ars,
                        long aks, const float *restrict B, long ldb, float *restrict C, long ldc,
                        const float *restrict rs) {
    blk_gemm_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1, NULL, 0, 0, 0, rs);
}
static __attribute__((noinline)) void blk_gemm_pf_rs(long m, long n, long kk, const float *restrict A, long ars,
                           long aks, const float *restrict B, long ldb, float *restrict C, long ldc,
                           const float *restrict rs, const float *pf, long pfr, long pfld, long pfc) {
    blk_gemm_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1, pf, pfr, pfld, pfc, rs);
}
/* R (<= 6) rows x the first Q (<= 4) of 4 16-column vectors, masked by m: C = A·B there */
static inline __attribute__((always_inline)) void blk_gemm_tileq(
    const int R, const int Q, long kk, const float *restrict A, long ars, long aks, const float *restrict B,
    long ldb, float *restrict C, long ldc, const __mmask16 *m) {
    __m512 c[6][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) c[r][q] = _mm512_setzero_ps();
    for (long k = 0; k < kk; k++) {
        const float *b = B + k * ldb;
        __m512 bv[4];
        for (int q = 0; q < Q; q++) bv[q] = _mm512_maskz_loadu_ps(m[q], b + 16 * q);
        const float *a = A + k * aks;
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars]);
            for (int q = 0; q < Q; q++) c[r][q] = _mm512_fmadd_ps(av, bv[q], c[r][q]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) _mm512_mask_storeu_ps(C + r * ldc + 16 * q, m[q], c[r][q]);
}
static inline __attribute__((always_inline)) void blk_gemm_tileq6(
    long q, long kk, const float *restrict A, long ars, long aks, const float *restrict B, long ldb,
    float *restrict C, long ldc, const __mmask16 *m) {
    switch (q) {
    case 1: blk_gemm_tileq(6, 1, kk, A, ars, aks, B, ldb, C, ldc, m); break;
    case 2: blk_gemm_tileq(6, 2, kk, A, ars, aks, B, ldb, C, ldc, m); break;
    case 3: blk_gemm_tileq(6, 3, kk, A, ars, aks, B, ldb, C, ldc, m); break;
    default: blk_gemm_tileq(6, 4, kk, A, ars, aks, B, ldb, C, ldc, m); break;
    }
}
/* C = A·B (not accumulated) where row i needs only its first lim + a·i columns (a >= 0): each
   register tile computes the 16-column vectors its last row needs; the other elements of C are
   left as they were (MaskedProduct's columns: a mask that never reads them follows). */
static __attribute__((noinline)) void blk_gemm_cl(long m, long n, long kk, const float *restrict A, long ars,
                        long aks, const float *restrict B, long ldb, float *restrict C, long ldc, long lim,
                        long a) {
    for (long js = 0; js < n; js += 64) {
        for (long i0 = 0; i0 < m; i0 += 6) {
            long R = m - i0 < 6 ? m - i0 : 6;
            long w = lim + a * (i0 + R - 1) - js;
            if (w > n - js) w = n - js;
            if (w <= 0) continue;
            __mmask16 mk[4] = {blk_mask(w), blk_mask(w - 16), blk_mask(w - 32), blk_mask(w - 48)};
            const float *ai = A + i0 * ars;
            float *c = C + i0 * ldc + js;
            switch (R) {
            case 6: blk_gemm_tileq6((w + 15) / 16, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            case 5: blk_gemm_tileq(5, 4, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            case 4: blk_gemm_tileq(4, 4, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            case 3: blk_gemm_tileq(3, 4, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            case 2: blk_gemm_tileq(2, 4, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            default: blk_gemm_tileq(1, 4, kk, ai, ars, aks, B + js, ldb, c, ldc, mk); break;
            }
        }
    }
}
static inline __attribute__((always_inline)) void blk_gemm_kl_impl(
    long m, long n, long kk, const float *restrict A, long ars, long aks, const float *restrict B, long ldb,
    float *restrict C, long ldc, int accumulate, const float *restrict rs, long lim, long a) {
    for (long js = 0; js < n; js += 64) {
        long w = n - js < 64 ? n - js : 64;
        __mmask16 mk[4] = {blk_mask(w), blk_mask(w - 16), blk_mask(w - 32), blk_mask(w - 48)};
        for (long i0 = 0; i0 < m; i0 += 6) {
            long R = m - i0 < 6 ? m - i0 : 6;
            long t = lim + a * (i0 + R - 1);
            t = t < 0 ? 0 : (t > kk ? kk : t);
            const float *ai = A + i0 * ars, *ri = rs ? rs + i0 : NULL;
            float *c = C + i0 * ldc + js;
            switch (R) {
            case 6: blk_gemm_tile64(6, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            case 5: blk_gemm_tile64(5, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            case 4: blk_gemm_tile64(4, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            case 3: blk_gemm_tile64(3, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            case 2: blk_gemm_tile64(2, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            default: blk_gemm_tile64(1, t, ai, ars, aks, B + js, ldb, c, ldc, mk, accumulate, ri); break;
            }
        }
    }
}
/* C (+)= A·B (rows rescaled by rs first where rs is given) where A(i, k) = 0 for k >= lim + a·i
   (a >= 0): each register tile reduces over the first lim + a·(its last row) of the kk terms
   (MaskedProduct's reduction); one copy per kind of accumulation, each with its constants */
static __attribute__((noinline)) void blk_gemm_kl(long m, long n, long kk, const float *restrict A, long ars,
                        long aks, const float *restrict B, long ldb, float *restrict C, long ldc,
                        int accumulate, const float *restrict rs, long lim, long a) {
    if (rs)
        blk_gemm_kl_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1, rs, lim, a);
    else if (accumulate)
        blk_gemm_kl_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1, NULL, lim, a);
    else
        blk_gemm_kl_impl(m, n, kk, A, ars, aks, B, ldb, C, ldc, 0, NULL, lim, a);
}
#elif defined(__AVX2__) && defined(__FMA__)
/* The first w of 8 lanes (all for w >= 8, none for w <= 0), for masked loads and stores. */
static inline __m256i blk_mask8(long w) {
    static const int t[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    long s = w >= 8 ? 0 : (w <= 0 ? 8 : 8 - w);
    return _mm256_loadu_si256((const __m256i *)(t + s));
}
/* R (<= 6) rows x 16 columns: 12 ymm accumulators, 2 loads and 6 broadcasts per 12 FMAs;
   FULL (a constant at each call) selects plain loads and stores over masked ones. */
static inline __attribute__((always_inline)) void blk_gemm_tile16(
    const int R, const int FULL, long kk, const float *restrict A, long ars, long aks,
    const float *restrict B, long ldb, float *restrict C, long ldc, __m256i m0, __m256i m1, int accumulate) {
    __m256 c0[6], c1[6];
    for (int r = 0; r < R; r++) {
        c0[r] = _mm256_setzero_ps();
        c1[r] = _mm256_setzero_ps();
    }
    for (long k = 0; k < kk; k++) {
        const float *b = B + k * ldb;
        __m256 b0 = FULL ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
        __m256 b1 = FULL ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
        const float *a = A + k * aks;
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * ars);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        float *c = C + r * ldc;
        if (FULL) {
            if (accumulate) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
                c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
            }
            _mm256_storeu_ps(c, c0[r]);
            _mm256_storeu_ps(c + 8, c1[r]);
        } else {
            if (accumulate) {
                c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(c, m0));
                c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(c + 8, m1));
            }
            _mm256_maskstore_ps(c, m0, c0[r]);
            _mm256_maskstore_ps(c + 8, m1, c1[r]);
        }
    }
}
/* One 16-column strip: 6-row tiles, then the remaining rows. */
static inline __attribute__((always_inline)) void blk_gemm_strip16(
    const int FULL, long m, long kk, const float *restrict A, long ars, long aks, const float *restrict B,
    long ldb, float *restrict C, long ldc, __m256i m0, __m256i m1, int accumulate) {
    long i0 = 0;
    for (; i0 + 6 <= m; i0 += 6)
        blk_gemm_tile16(6, FULL, kk, A + i0 * ars, ars, aks, B, ldb, C + i0 * ldc, ldc, m0, m1, accumulate);
    const float *a = A + i0 * ars;
    float *c = C + i0 * ldc;
    switch (m - i0) {
    case 5: blk_gemm_tile16(5, FULL, kk, a, ars, aks, B, ldb, c, ldc, m0, m1, accumulate); break;
    case 4: blk_gemm_tile16(4, FULL, kk, a, ars, aks, B, ldb, c, ldc, m0, m1, accumulate); break;
    case 3: blk_gemm_tile16(3, FULL, kk, a, ars, aks, B, ldb, c, ldc, m0, m1, accumulate); break;
    case 2: blk_gemm_tile16(2, FULL, kk, a, ars, aks, B, ldb, c, ldc, m0, m1, accumulate); break;
    case 1: blk_gemm_tile16(1, FULL, kk, a, ars, aks, B, ldb, c, ldc, m0, m1, accumulate); break;
    default: break;
    }
}
static __attribute__((noinline)) void blk_gemm(long m, long n, long kk, const float *restrict A, long ars, long aks,
                     const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate) {
    long j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) {
        __m256i all = blk_mask8(8);
        blk_gemm_strip16(1, m, kk, A, ars, aks, B + j0, ldb, C + j0, ldc, all, all, accumulate);
    }
    if (j0 < n) {
        long w = n - j0;
        blk_gemm_strip16(0, m, kk, A, ars, aks, B + j0, ldb, C + j0, ldc, blk_mask8(w), blk_mask8(w - 8),
                         accumulate);
    }
}
static __attribute__((noinline)) void blk_gemm_pf(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate,
                        const float *pf, long pfr, long pfld, long pfc) {
    (void)pf, (void)pfr, (void)pfld, (void)pfc;
    blk_gemm(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
#else
static __attribute__((noinline)) void blk_gemm(long m, long n, long kk, const float *restrict A, long ars, long aks,
                     const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate) {
    for (long i = 0; i < m; i++) {
        float *c = C + i * ldc;
        if (!accumulate)
            for (long j = 0; j < n; j++) c[j] = 0.0f;
        for (long k = 0; k < kk; k++) {
            const float a = A[i * ars + k * aks];
            const float *b = B + k * ldb;
#pragma omp simd
            for (long j = 0; j < n; j++) c[j] += a * b[j];
        }
    }
}
static __attribute__((noinline)) void blk_gemm_pf(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate,
                        const float *pf, long pfr, long pfld, long pfc) {
    (void)pf, (void)pfr, (void)pfld, (void)pfc;
    blk_gemm(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
#endif
#ifndef __AVX512F__
/* blk_gemm_rs without AVX-512: the rows rescaled first, then the product accumulates onto them */
static inline void blk_scale_rows(long m, long n, const float *restrict rs, float *restrict C, long ldc) {
    for (long i = 0; i < m; i++) {
        float *c = C + i * ldc;
#pragma omp simd
        for (long j = 0; j < n; j++) c[j] = c[j] * rs[i];
    }
}
static void blk_gemm_rs(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, const float *restrict rs) {
    blk_scale_rows(m, n, rs, C, ldc);
    blk_gemm(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1);
}
static void blk_gemm_pf_rs(long m, long n, long kk, const float *restrict A, long ars, long aks,
                           const float *restrict B, long ldb, float *restrict C, long ldc, const float *restrict rs,
                           const float *pf, long pfr, long pfld, long pfc) {
    blk_scale_rows(m, n, rs, C, ldc);
    blk_gemm_pf(m, n, kk, A, ars, aks, B, ldb, C, ldc, 1, pf, pfr, pfld, pfc);
}
/* blk_gemm_cl and blk_gemm_kl without AVX-512: every column (the mask discards the extra ones),
   and the reduction cut 8 rows at a time */
static void blk_gemm_cl(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, long lim, long a) {
    (void)lim, (void)a;
    blk_gemm(m, n, kk, A, ars, aks, B, ldb, C, ldc, 0);
}
static void blk_gemm_kl(long m, long n, long kk, const float *restrict A, long ars, long aks,
                        const float *restrict B, long ldb, float *restrict C, long ldc, int accumulate,
                        const float *restrict rs, long lim, long a) {
    for (long i0 = 0; i0 < m; i0 += 8) {
        long R = m - i0 < 8 ? m - i0 : 8;
        long t = lim + a * (i0 + R - 1);
        t = t < 0 ? 0 : (t > kk ? kk : t);
        if (rs) blk_scale_rows(R, n, rs + i0, C + i0 * ldc, ldc);
        blk_gemm(R, n, t, A + i0 * ars, ars, aks, B, ldb, C + i0 * ldc, ldc, accumulate);
    }
}
#endif
/* blk_gemm of a B packed in panels 64 columns wide (each kk x 64, rows 64 apart), ps words apart */
static inline void blk_gemm_panels(long m, long n, long kk, const float *restrict A, long ars, long aks,
                                   const float *restrict B, long ps, float *restrict C, long ldc,
                                   int accumulate) {
    for (long j0 = 0; j0 < n; j0 += 64)
        blk_gemm(m, n - j0 < 64 ? n - j0 : 64, kk, A, ars, aks, B + (j0 / 64) * ps, 64, C + j0, ldc, accumulate);
}
/* ---- runtime: bf16 block dot ---- */
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512F__)
/* pairs of k per chunk of packed A (the accumulators stay in registers over one chunk) and rows of A
   packed at once (a multiple of both row tiles, 6 and 8) */
#define BLK_BF16_KC 128
#define BLK_BF16_MB 24
/* 16 lanes of (bf16(lo[j]), bf16(hi[j])) pairs, low half from lo, both rounded to nearest even */
static inline __attribute__((always_inline)) __m512i blk_bf16_pairs(__m512 lo, __m512 hi) {
    static const unsigned short interleave[32] __attribute__((aligned(64))) = {
        0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
        8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    return _mm512_permutexvar_epi16(_mm512_load_si512((const void *)interleave), both);
}
/* 16 pairs from 32 consecutive floats x[0..f) (zeros past f) */
static inline __attribute__((always_inline)) __m512i blk_bf16_run(const float *x, long f) {
    __m512 lo = _mm512_maskz_loadu_ps(blk_mask(f), x), hi = _mm512_maskz_loadu_ps(blk_mask(f - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}
/* the first w of 32 lanes */
static inline __mmask32 blk_mask32(long w) {
    return (__mmask32)(w >= 32 ? 0xFFFFFFFFu : (w > 0 ? ((1u << w) - 1u) : 0u));
}
/* 16 pairs from 32 consecutive bf16 x[0..f) (zeros past f, nothing read past f; any 2-byte alignment) */
static inline __attribute__((always_inline)) __m512i blk_bf16_run16(const uint16_t *x, long f) {
    return _mm512_maskz_loadu_epi16(blk_mask32(f), (const void *)x);
}
/* the bf16 x[0..16) zero-extended to 32-bit lanes, those in mk only (zeros elsewhere, nothing read there) */
static inline __attribute__((always_inline)) __m512i blk_bf16_widen(__mmask16 mk, const uint16_t *x) {
    __m512i x16 = _mm512_maskz_loadu_epi16((__mmask32)mk, (const void *)x);
    return _mm512_cvtepu16_epi32(_mm512_castsi512_si256(x16));
}
/* 16 pairs, the low half of each lane from lo's and the high half from hi's (both zero-extended bf16) */
static inline __attribute__((always_inline)) __m512i blk_bf16_zip(__m512i lo, __m512i hi) {
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}
/* the bf16 bits of x rounded to nearest even (NaN stays NaN) */
static inline uint32_t blk_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
/* W[p*ldw + j] = the pair (B(2p,j), B(2p+1,j)) as bf16, low half first, for p < np, j < n */
static inline void blk_bf16_pack_b(long np, long kk, long n, const float *restrict B, long ks, long js,
                                   uint32_t *restrict W, long ldw) {
    if (js == 1) {
        /* rows 2p and 2p+1 side by side: one conversion and one interleave per 16 columns */
        for (long p = 0; p < np; p++) {
            const float *b0 = B + 2 * p * ks, *b1 = b0 + ks;
            int odd = 2 * p + 1 == kk;
            uint32_t *w = W + p * ldw;
            for (long j = 0; j < n; j += 16) {
                __mmask16 mk = blk_mask(n - j);
                __m512 x0 = _mm512_maskz_loadu_ps(mk, b0 + j);
                __m512 x1 = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk, b1 + j);
                _mm512_mask_storeu_epi32(w + j, mk, blk_bf16_pairs(x0, x1));
            }
        }
    } else if (ks == 1) {
        /* column j's pairs are consecutive floats: convert 16 pairs of 16 columns, then transpose */
        for (long j0 = 0; j0 < n; j0 += 16) {
            __mmask16 cm = blk_mask(n - j0);
            for (long q = 0; q < np; q += 16) {
                __m512i v[16];
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    v[t] = j0 + t < n ? blk_bf16_run(B + (j0 + t) * js + 2 * q, kk - 2 * q)
                                      : _mm512_setzero_si512();
                blk_transpose16(v);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    if (q + t < np) _mm512_mask_storeu_epi32(W + (q + t) * ldw + j0, cm, v[t]);
            }
        }
    } else {
        for (long p = 0; p < np; p++)
            for (long j = 0; j < n; j++) {
                uint32_t hi = 2 * p + 1 < kk ? blk_bf16_bits(B[(2 * p + 1) * ks + j * js]) : 0u;
                W[p * ldw + j] = blk_bf16_bits(B[2 * p * ks + j * js]) | hi << 16;
            }
    }
}
/* blk_bf16_pack_b for B given as bf16 bits: the same pairs, the bits moved as they are */
static inline void blk_bf16_pack_b16(long np, long kk, long n, const uint16_t *restrict B, long ks, long js,
                                     uint32_t *restrict W, long ldw) {
    if (js == 1) {
        /* rows 2p and 2p+1 side by side: two zero-extending loads and a shift per 16 columns */
        for (long p = 0; p < np; p++) {
            const uint16_t *b0 = B + 2 * p * ks;
            int odd = 2 * p + 1 == kk;
            uint32_t *w = W + p * ldw;
            for (long j = 0; j < n; j += 16) {
                __mmask16 mk = blk_mask(n - j);
                __m512i hi = odd ? _mm512_setzero_si512() : blk_bf16_widen(mk, b0 + ks + j);
                _mm512_mask_storeu_epi32(w + j, mk, blk_bf16_zip(blk_bf16_widen(mk, b0 + j), hi));
            }
        }
    } else if (ks == 1) {
        /* column j's pairs are the 32-bit words at B + j*js + 2p (loaded as 16-bit halves, so that an odd
           kk's last pair ends at B(kk-1,j)): 16 pairs of 16 columns, then transpose */
        for (long j0 = 0; j0 < n; j0 += 16) {
            __mmask16 cm = blk_mask(n - j0);
            for (long q = 0; q < np; q += 16) {
                __m512i v[16];
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    v[t] = j0 + t < n ? blk_bf16_run16(B + (j0 + t) * js + 2 * q, kk - 2 * q)
                                      : _mm512_setzero_si512();
                blk_transpose16(v);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    if (q + t < np) _mm512_mask_storeu_epi32(W + (q + t) * ldw + j0, cm, v[t]);
            }
        }
    } else {
        for (long p = 0; p < np; p++)
            for (long j = 0; j < n; j++) {
                uint32_t hi = 2 * p + 1 < kk ? B[(2 * p + 1) * ks + j * js] : 0u;
                W[p * ldw + j] = B[2 * p * ks + j * js] | hi << 16;
            }
    }
}
/* P[r*BLK_BF16_KC + q] = the pair (A(r,2(p0+q)), A(r,2(p0+q)+1)) for r < mb, q < pc */
static inline void blk_bf16_pack_a(long mb, long pc, long p0, long kk, const float *restrict A, long ars,
                                   long aks, uint32_t *restrict P) {
    long k0 = 2 * p0;
    if (aks == 1) {
        for (long q = 0; q < pc; q += 16) {
            const float *a = A + k0 + 2 * q;
            uint32_t *p = P + q;
            long f = kk - k0 - 2 * q;
            if (f >= 32)
                for (long r = 0; r < mb; r++, a += ars, p += BLK_BF16_KC)
                    _mm512_store_si512((void *)p, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + 16),
                                                                                 _mm512_loadu_ps(a)));
            else
                for (long r = 0; r < mb; r++, a += ars, p += BLK_BF16_KC)
                    _mm512_store_si512((void *)p, blk_bf16_run(a, f));
        }
    } else if (ars == 1) {
        /* rows are consecutive floats: pair 16 rows at two k, 16 pairs at a time, then transpose */
        for (long r0 = 0; r0 < mb; r0 += 16) {
            __mmask16 rm = blk_mask(mb - r0);
            for (long q = 0; q < pc; q += 16) {
                __m512i v[16];
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++) {
                    long k = k0 + 2 * (q + t);
                    __m512 x0 = _mm512_maskz_loadu_ps(k < kk ? rm : 0, A + k * aks + r0);
                    __m512 x1 = _mm512_maskz_loadu_ps(k + 1 < kk ? rm : 0, A + (k + 1) * aks + r0);
                    v[t] = blk_bf16_pairs(x0, x1);
                }
                blk_transpose16(v);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    if (r0 + t < mb) _mm512_store_si512((void *)(P + (r0 + t) * BLK_BF16_KC + q), v[t]);
            }
        }
    } else {
        for (long r = 0; r < mb; r++)
            for (long q = 0; q < pc; q++) {
                long k = k0 + 2 * q;
                uint32_t hi = k + 1 < kk ? blk_bf16_bits(A[r * ars + (k + 1) * aks]) : 0u;
                P[r * BLK_BF16_KC + q] = blk_bf16_bits(A[r * ars + k * aks]) | hi << 16;
            }
    }
}
/* blk_bf16_pack_a for A given as bf16 bits: the same pairs, the bits moved as they are */
static inline void blk_bf16_pack_a16(long mb, long pc, long p0, long kk, const uint16_t *restrict A, long ars,
                                     long aks, uint32_t *restrict P) {
    long k0 = 2 * p0;
    if (aks == 1) {
        /* a row's pairs are consecutive 32-bit words (loaded as 16-bit halves: an odd kk ends mid-word) */
        for (long q = 0; q < pc; q += 16) {
            const uint16_t *a = A + k0 + 2 * q;
            uint32_t *p = P + q;
            long f = kk - k0 - 2 * q;
            for (long r = 0; r < mb; r++, a += ars, p += BLK_BF16_KC)
                _mm512_store_si512((void *)p, blk_bf16_run16(a, f));
        }
    } else if (ars == 1) {
        /* rows are consecutive: pair 16 rows at two k, 16 pairs at a time, then transpose */
        for (long r0 = 0; r0 < mb; r0 += 16) {
            __mmask16 rm = blk_mask(mb - r0);
            for (long q = 0; q < pc; q += 16) {
                __m512i v[16];
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++) {
                    long k = k0 + 2 * (q + t);
                    __m512i x0 = blk_bf16_widen(k < kk ? rm : 0, A + k * aks + r0);
                    __m512i x1 = blk_bf16_widen(k + 1 < kk ? rm : 0, A + (k + 1) * aks + r0);
                    v[t] = blk_bf16_zip(x0, x1);
                }
                blk_transpose16(v);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    if (r0 + t < mb) _mm512_store_si512((void *)(P + (r0 + t) * BLK_BF16_KC + q), v[t]);
            }
        }
    } else {
        for (long r = 0; r < mb; r++)
            for (long q = 0; q < pc; q++) {
                long k = k0 + 2 * q;
                uint32_t hi = k + 1 < kk ? A[r * ars + (k + 1) * aks] : 0u;
                P[r * BLK_BF16_KC + q] = A[r * ars + k * aks] | hi << 16;
            }
    }
}
/* R (<= 6) rows x 64 columns: 24 zmm accumulators, 4 loads and 6 broadcasts per 24 vdpbf16ps */
static inline __attribute__((always_inline)) void blk_bf16_tile64(
    const int R, long pc, const uint32_t *restrict P, const uint32_t *restrict W, long ldw, float *restrict C,
    long ldc, const __mmask16 *m, int accumulate, const float *rs) {
    __m512 c[6][4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 4; q++) c[r][q] = _mm512_setzero_ps();
    for (long p = 0; p < pc; p++) {
        const uint32_t *w = W + p * ldw;
        __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m[0], w);
        __m512bh b1 = (__m512bh)_mm512_maskz_loadu_epi32(m[1], w + 16);
        __m512bh b2 = (__m512bh)_mm512_maskz_loadu_epi32(m[2], w + 32);
        __m512bh b3 = (__m512bh)_mm512_maskz_loadu_epi32(m[3], w + 48);
        for (int r = 0; r < R; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)P[r * BLK_BF16_KC + p]);
            c[r][0] = _mm512_dpbf16_ps(c[r][0], av, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], av, b1);
            c[r][2] = _mm512_dpbf16_ps(c[r][2], av, b2);
            c[r][3] = _mm512_dpbf16_ps(c[r][3], av, b3);
        }
    }
    for (int r = 0; r < R; r++) {
        float *cr = C + r * ldc;
        for (int q = 0; q < 4; q++) {
            if (accumulate) {
                __m512 o = _mm512_maskz_loadu_ps(m[q], cr + 16 * q);
                if (rs) o = _mm512_mul_ps(o, _mm512_set1_ps(rs[r]));
                c[r][q] = _mm512_add_ps(c[r][q], o);
            }
            _mm512_mask_storeu_ps(cr + 16 * q, m[q], c[r][q]);
        }
    }
}
/* R (<= 8) rows x 32 columns: 16 zmm accumulators */
static inline __attribute__((always_inline)) void blk_bf16_tile32(
    const int R, long pc, const uint32_t *restrict P, const uint32_t *restrict W, long ldw, float *restrict C,
    long ldc, __mmask16 m0, __mmask16 m1, int accumulate, const float *rs) {
    __m512 c0[8], c1[8];
    for (int r = 0; r < R; r++) {
        c0[r] = _mm512_setzero_ps();
        c1[r] = _mm512_setzero_ps();
    }
    for (long p = 0; p < pc; p++) {
        const uint32_t *w = W + p * ldw;
        __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, w);
        __m512bh b1 = (__m512bh)_mm512_maskz_loadu_epi32(m1, w + 16);
        for (int r = 0; r < R; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)P[r * BLK_BF16_KC + p]);
            c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
        }
    }
    for (int r = 0; r < R; r++) {
        float *c = C + r * ldc;
        if (accumulate) {
            __m512 o0 = _mm512_maskz_loadu_ps(m0, c), o1 = _mm512_maskz_loadu_ps(m1, c + 16);
            if (rs) {
                o0 = _mm512_mul_ps(o0, _mm512_set1_ps(rs[r]));
                o1 = _mm512_mul_ps(o1, _mm512_set1_ps(rs[r]));
            }
            c0[r] = _mm512_add_ps(c0[r], o0);
            c1[r] = _mm512_add_ps(c1[r], o1);
        }
        _mm512_mask_storeu_ps(c, m0, c0[r]);
        _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
    }
}
/* C (+)= the packed rows P (mb <= BLK_BF16_MB) times the packed pairs W, over pc pairs; C's row i
   scaled by rs[i] first where rs is given (and accumulate set) */
static inline void blk_bf16_block(long mb, long n, long pc, const uint32_t *restrict P,
                                  const uint32_t *restrict W, long ldw, float *restrict C, long ldc,
                                  int accumulate, const float *rs) {
    long j0 = 0;
    for (; j0 + 32 < n; j0 += 64) {
        long w = n - j0 < 64 ? n - j0 : 64;
        __mmask16 mk[4] = {blk_mask(w), blk_mask(w - 16), blk_mask(w - 32), blk_mask(w - 48)};
        long i0 = 0;
        for (; i0 + 6 <= mb; i0 += 6)
            blk_bf16_tile64(6, pc, P + i0 * BLK_BF16_KC, W + j0, ldw, C + i0 * ldc + j0, ldc, mk, accumulate,
                            rs ? rs + i0 : NULL);
        const uint32_t *p = P + i0 * BLK_BF16_KC;
        const float *ra = rs ? rs + i0 : NULL;
        float *c = C + i0 * ldc + j0;
        switch (mb - i0) {
        case 5: blk_bf16_tile64(5, pc, p, W + j0, ldw, c, ldc, mk, accumulate, ra); break;
        case 4: blk_bf16_tile64(4, pc, p, W + j0, ldw, c, ldc, mk, accumulate, ra); break;
        case 3: blk_bf16_tile64(3, pc, p, W + j0, ldw, c, ldc, mk, accumulate, ra); break;
        case 2: blk_bf16_tile64(2, pc, p, W + j0, ldw, c, ldc, mk, accumulate, ra); break;
        case 1: blk_bf16_tile64(1, pc, p, W + j0, ldw, c, ldc, mk, accumulate, ra); break;
        default: break;
        }
    }
    if (j0 < n) {
        long w = n - j0;
        __mmask16 m0 = blk_mask(w), m1 = blk_mask(w - 16);
        long i0 = 0;
        for (; i0 + 8 <= mb; i0 += 8)
            blk_bf16_tile32(8, pc, P + i0 * BLK_BF16_KC, W + j0, ldw, C + i0 * ldc + j0, ldc, m0, m1,
                            accumulate, rs ? rs + i0 : NULL);
        const uint32_t *p = P + i0 * BLK_BF16_KC;
        const float *ra = rs ? rs + i0 : NULL;
        float *c = C + i0 * ldc + j0;
        switch (mb - i0) {
        case 7: blk_bf16_tile32(7, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 6: blk_bf16_tile32(6, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 5: blk_bf16_tile32(5, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 4: blk_bf16_tile32(4, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 3: blk_bf16_tile32(3, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 2: blk_bf16_tile32(2, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        case 1: blk_bf16_tile32(1, pc, p, W + j0, ldw, c, ldc, m0, m1, accumulate, ra); break;
        default: break;
        }
    }
}
/* Prefetches a block (rows of `bytes` bytes, `ld` bytes apart) into L1 a portion per step, so that the
   next product's operand arrives while this one computes. */
typedef struct { const char *p; long rows, ld, lines, row, line, per; } blk_bf16_prefetcher;
static inline blk_bf16_prefetcher blk_bf16_prefetch_plan(const void *pf, long rows, long ld, long bytes,
                                                         long steps) {
    /* a row that does not start on a line boundary touches one line more */
    blk_bf16_prefetcher q = {(const char *)pf, rows, ld, (bytes + 63) / 64 + 1, 0, 0, 0};
    if (pf && steps > 0) q.per = (rows * q.lines + steps - 1) / steps;
    return q;
}
static inline void blk_bf16_prefetch_step(blk_bf16_prefetcher *q) {
    for (long t = 0; t < q->per && q->row < q->rows; t++) {
        _mm_prefetch(q->p + q->row * q->ld + 64 * q->line, _MM_HINT_T0);
        if (++q->line == q->lines) { q->line = 0; q->row++; }
    }
}
/* C (+)= A times the packed pairs W (np pairs of kk, rows ldw words apart), A packed a panel at a time */
static inline __attribute__((always_inline)) void blk_bf16_product(long m, long n, long kk,
        const void *restrict A, int a16, long ars, long aks, const uint32_t *restrict W32, long ldw,
        float *restrict C, long ldc, int accumulate, const float *rs, blk_bf16_prefetcher *q) {
    long np = (kk + 1) / 2;
    uint32_t P[BLK_BF16_MB * BLK_BF16_KC] __attribute__((aligned(64)));
    for (long i0 = 0; i0 < m; i0 += BLK_BF16_MB) {
        long mb = m - i0 < BLK_BF16_MB ? m - i0 : BLK_BF16_MB;
        for (long p0 = 0; p0 < np; p0 += BLK_BF16_KC) {
            long pc = np - p0 < BLK_BF16_KC ? np - p0 : BLK_BF16_KC;
            if (a16) blk_bf16_pack_a16(mb, pc, p0, kk, (const uint16_t *)A + i0 * ars, ars, aks, P);
            else blk_bf16_pack_a(mb, pc, p0, kk, (const float *)A + i0 * ars, ars, aks, P);
            blk_bf16_prefetch_step(q);
            /* the row scales apply once, where the first chunk loads C */
            blk_bf16_block(mb, n, pc, P, W32 + p0 * ldw, ldw, C + i0 * ldc, ldc, accumulate || p0 > 0,
                           rs && p0 == 0 ? rs + i0 : NULL);
        }
    }
}
static inline __attribute__((always_inline)) void blk_gemm_bf16_impl(long m, long n, long kk,
        const void *restrict A, int a16, long ars, long aks, const void *restrict B, int b16, long ks, long js,
        float *restrict C, long ldc, int accumulate, float *restrict W, const void *pf, long pfr, long pfld,
        long pfc, const float *rs) {
    long np = (kk + 1) / 2;
    const long size = b16 ? 2 : 4;
    blk_bf16_prefetcher q = blk_bf16_prefetch_plan(pf, pfr, pfld * size, pfc * size,
        ((m + BLK_BF16_MB - 1) / BLK_BF16_MB) * ((np + BLK_BF16_KC - 1) / BLK_BF16_KC));
    /* rows of packed pairs 64-byte aligned when that fits in kk*n floats */
    long ldw = (n + 15) / 16 * 16;
    if (np * ldw > kk * n) ldw = n;
    uint32_t *W32 = (uint32_t *)W;
    if (b16) blk_bf16_pack_b16(np, kk, n, (const uint16_t *)B, ks, js, W32, ldw);
    else blk_bf16_pack_b(np, kk, n, (const float *)B, ks, js, W32, ldw);
    blk_bf16_product(m, n, kk, A, a16, ars, aks, W32, ldw, C, ldc, accumulate, rs, &q);
}
/* The pairs of an R x C bf16 matrix T (row-major) for j = c0 .. c0+cw-1, pair rows ldp words apart: with
   kAlongRows P[p*ldp + j-c0] = (T[2p][j], T[2p+1][j]), else P[p*ldp + j-c0] = (T[j][2p], T[j][2p+1]);
   an odd count pads 0 */
static void blk_bf16_prepack(const uint16_t *restrict T, long R, long C, int kAlongRows, long c0, long cw,
                             uint32_t *restrict P, long ldp) {
    if (kAlongRows) blk_bf16_pack_b16((R + 1) / 2, R, cw, T + c0, C, 1, P, ldp);
    else blk_bf16_pack_b16((C + 1) / 2, C, cw, T + c0 * C, 1, C, P, ldp);
}
/* blk_gemm_bf16 with B given packed (by blk_bf16_prepack: Bp[p*ldp + j] is the pair of k = 2p, 2p+1) */
static __attribute__((noinline)) void blk_gemm_bf16p(long m, long n, long kk, const void *restrict A, int a16,
        long ars, long aks, const uint32_t *restrict Bp, long ldp, float *restrict C, long ldc, int accumulate,
        float *restrict W) {
    (void)W;
    blk_bf16_prefetcher q = blk_bf16_prefetch_plan(NULL, 0, 0, 0, 0);
    blk_bf16_product(m, n, kk, A, a16, ars, aks, Bp, ldp, C, ldc, accumulate, NULL, &q);
}
static __attribute__((noinline)) void blk_gemm_bf16(long m, long n, long kk, const void *restrict A, int a16,
        long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C, long ldc,
        int accumulate, float *restrict W) {
    blk_gemm_bf16_impl(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, accumulate, W, NULL, 0, 0, 0, NULL);
}
/* blk_gemm_bf16 that also prefetches the block the enclosing loop's next iteration reads (pfr rows of pfc
   elements, pfld elements apart, of B's type) */
static __attribute__((noinline)) void blk_gemm_bf16_pf(long m, long n, long kk, const void *restrict A,
        int a16, long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C,
        long ldc, int accumulate, float *restrict W, const void *pf, long pfr, long pfld, long pfc) {
    blk_gemm_bf16_impl(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, accumulate, W, pf, pfr, pfld, pfc,
                       NULL);
}
/* C = rs⊙C + A·B: the accumulator's rows rescaled as the tiles load them (RowScaledAccumulation) */
static __attribute__((noinline)) void blk_gemm_bf16_rs(long m, long n, long kk, const void *restrict A,
        int a16, long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C,
        long ldc, const float *restrict rs, float *restrict W) {
    blk_gemm_bf16_impl(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, 1, W, NULL, 0, 0, 0, rs);
}
static __attribute__((noinline)) void blk_gemm_bf16_pf_rs(long m, long n, long kk, const void *restrict A,
        int a16, long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C,
        long ldc, const float *restrict rs, float *restrict W, const void *pf, long pfr, long pfld, long pfc) {
    blk_gemm_bf16_impl(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, 1, W, pf, pfr, pfld, pfc, rs);
}
static __attribute__((noinline)) void blk_gemm_bf16p_rs(long m, long n, long kk, const void *restrict A,
        int a16, long ars, long aks, const uint32_t *restrict Bp, long ldp, float *restrict C, long ldc,
        const float *restrict rs, float *restrict W) {
    (void)W;
    blk_bf16_prefetcher q = blk_bf16_prefetch_plan(NULL, 0, 0, 0, 0);
    blk_bf16_product(m, n, kk, A, a16, ars, aks, Bp, ldp, C, ldc, 1, rs, &q);
}
#else
/* x rounded to the nearest bf16, ties to even, as a float (NaN stays NaN) */
static inline float blk_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return x;
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, sizeof u);
    return x;
}
/* element i of x as a float: bf16 bits widened exactly (x16) or a float rounded to the nearest bf16 */
static inline float blk_bf16_at(const void *x, int x16, long i) {
    if (!x16) return blk_bf16_round(((const float *)x)[i]);
    uint32_t u = (uint32_t)((const uint16_t *)x)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof u);
    return f;
}
/* C (+)= A's bf16 values (12 rows x 256 k at a time in a stack buffer) times the kk x n floats W */
static inline void blk_bf16_times(long m, long n, long kk, const void *restrict A, int a16, long ars, long aks,
                                  const float *restrict W, float *restrict C, long ldc, int accumulate) {
    float a[12 * 256] __attribute__((aligned(64)));
    for (long i0 = 0; i0 < m; i0 += 12) {
        long mb = m - i0 < 12 ? m - i0 : 12;
        for (long k0 = 0; k0 < kk; k0 += 256) {
            long kb = kk - k0 < 256 ? kk - k0 : 256;
            for (long r = 0; r < mb; r++)
                for (long k = 0; k < kb; k++)
                    a[r * 256 + k] = blk_bf16_at(A, a16, (i0 + r) * ars + (k0 + k) * aks);
            blk_gemm(mb, n, kb, a, 256, 1, W + k0 * n, n, C + i0 * ldc, ldc, accumulate || k0 > 0);
        }
    }
}
/* without AVX512_BF16: the f32 product of the operands' bf16 values (exact products): B into W (in
   blk_pack's order), A through blk_bf16_times */
static __attribute__((noinline)) void blk_gemm_bf16(long m, long n, long kk, const void *restrict A, int a16,
        long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C, long ldc,
        int accumulate, float *restrict W) {
    if (js == 1) {
        for (long k = 0; k < kk; k++)
            for (long j = 0; j < n; j++) W[k * n + j] = blk_bf16_at(B, b16, k * ks + j);
    } else {
        for (long k0 = 0; k0 < kk; k0 += 16)
            for (long j0 = 0; j0 < n; j0 += 16) {
                long k1 = k0 + 16 < kk ? k0 + 16 : kk, j1 = j0 + 16 < n ? j0 + 16 : n;
                for (long j = j0; j < j1; j++)
                    for (long k = k0; k < k1; k++) W[k * n + j] = blk_bf16_at(B, b16, k * ks + j * js);
            }
    }
    blk_bf16_times(m, n, kk, A, a16, ars, aks, W, C, ldc, accumulate);
}
/* The same pairs as the AVX512_BF16 path's blk_bf16_prepack, written one at a time */
static void blk_bf16_prepack(const uint16_t *restrict T, long R, long C, int kAlongRows, long c0, long cw,
                             uint32_t *restrict P, long ldp) {
    long kk = kAlongRows ? R : C;
    for (long p = 0; p < (kk + 1) / 2; p++)
        for (long j = c0; j < c0 + cw; j++) {
            long lo = kAlongRows ? 2 * p * C + j : j * C + 2 * p, hi = lo + (kAlongRows ? C : 1);
            P[p * ldp + j - c0] = (uint32_t)T[lo] | (2 * p + 1 < kk ? (uint32_t)T[hi] << 16 : 0u);
        }
}
/* blk_gemm_bf16 with B given packed: its pairs widened into W first */
static __attribute__((noinline)) void blk_gemm_bf16p(long m, long n, long kk, const void *restrict A, int a16,
        long ars, long aks, const uint32_t *restrict Bp, long ldp, float *restrict C, long ldc, int accumulate,
        float *restrict W) {
    for (long k = 0; k < kk; k++)
        for (long j = 0; j < n; j++) {
            uint32_t u = k % 2 ? Bp[(k / 2) * ldp + j] & 0xFFFF0000u : Bp[(k / 2) * ldp + j] << 16;
            memcpy(W + k * n + j, &u, sizeof u);
        }
    blk_bf16_times(m, n, kk, A, a16, ars, aks, W, C, ldc, accumulate);
}
static __attribute__((noinline)) void blk_gemm_bf16_pf(long m, long n, long kk, const void *restrict A,
        int a16, long ars, long aks, const void *restrict B, int b16, long ks, long js, float *restrict C,
        long ldc, int accumulate, float *restrict W, const void *pf, long pfr, long pfld, long pfc) {
    (void)pf, (void)pfr, (void)pfld, (void)pfc;
    blk_gemm_bf16(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, accumulate, W);
}
/* the _rs products without AVX512_BF16: C's rows rescaled first, then the product accumulates onto them */
static inline void blk_bf16_scale_rows(long m, long n, const float *restrict rs, float *restrict C, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) C[i * ldc + j] = C[i * ldc + j] * rs[i];
}
static void blk_gemm_bf16_rs(long m, long n, long kk, const void *restrict A, int a16, long ars, long aks,
                             const void *restrict B, int b16, long ks, long js, float *restrict C, long ldc,
                             const float *restrict rs, float *restrict W) {
    blk_bf16_scale_rows(m, n, rs, C, ldc);
    blk_gemm_bf16(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, 1, W);
}
static void blk_gemm_bf16_pf_rs(long m, long n, long kk, const void *restrict A, int a16, long ars, long aks,
                                const void *restrict B, int b16, long ks, long js, float *restrict C, long ldc,
                                const float *restrict rs, float *restrict W, const void *pf, long pfr,
                                long pfld, long pfc) {
    (void)pf, (void)pfr, (void)pfld, (void)pfc;
    blk_gemm_bf16_rs(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, rs, W);
}
static void blk_gemm_bf16p_rs(long m, long n, long kk, const void *restrict A, int a16, long ars, long aks,
                              const uint32_t *restrict Bp, long ldp, float *restrict C, long ldc,
                              const float *restrict rs, float *restrict W) {
    blk_bf16_scale_rows(m, n, rs, C, ldc);
    blk_gemm_bf16p(m, n, kk, A, a16, ars, aks, Bp, ldp, C, ldc, 1, W);
}
#endif
