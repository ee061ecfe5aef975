/// The C runtime helpers a generated source starts with, as text.
///
/// They are `static inline` so that gcc inlines them into the kernels' loops and vectorises
/// them there; every generated file carries its own copy, so the output is self-contained.
public enum CRuntime {
    /// Allocation, index arithmetic and the NaN-propagating `max`/`min` of `ScalarOps`.
    public static let basics = #"""
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
        """#

    /// Row reductions over contiguous elements, written with 16 independent partial results so
    /// that gcc vectorises them without reassociation flags.
    public static let reductions = #"""
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
        """#
}
