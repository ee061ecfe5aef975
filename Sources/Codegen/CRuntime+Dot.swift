extension CRuntime {
    /// The block matrix product `C (+)= op(A) · op(B)` and its packing step.
    ///
    /// `blk_gemm` computes `C[i][j] (+)= Σ_k A(i,k)·B[k][j]` for `i < m`, `j < n`, `k < kk`,
    /// where `A(i,k) = A[i·ars + k·aks]` (any strides: transposed `A` costs nothing) and `B` has
    /// unit stride along `j` (the emitter packs other layouts with `blk_pack`). With AVX-512 it
    /// walks 64-column strips register-blocked 6 rows × 64 columns (24 `zmm` accumulators, 4
    /// loads and 6 broadcasts per 24 FMAs), and a last strip of at most 32 columns 8 rows × 32
    /// columns (16 accumulators); masked loads and stores handle partial strips and never touch
    /// memory past the valid extent. `blk_gemm_pf` is the same product that also prefetches
    /// into L1, a few cache lines before each register tile, the block the enclosing loop's
    /// next iteration reads (the emitter passes it for a `dot` operand read in place from a
    /// global tensor at an offset that moves with the loop), so those misses overlap the FMAs.
    /// Both stay out of line (`noinline`): inlined into the kernel, gcc schedules them worse.
    /// `blk_gemm_panels` is the product of a `B` packed once per call in 64-column panels (the
    /// schedule's `Prepack`), a panel at a time. `blk_gemm_rs` and `blk_gemm_pf_rs` accumulate onto
    /// `C` with its row `i` multiplied by `rs[i]` first (`C = rs⊙C + A·B`, the schedule's
    /// `RowScaledAccumulation`): with AVX-512 the tiles scale each row of `C` as they load it
    /// (`sum + rs[i]·C[i][j]`, the unfused add's operands); otherwise the rows are scaled, then
    /// `blk_gemm` accumulates onto them. `blk_gemm_cl` and `blk_gemm_kl` are the products of the
    /// schedule's `MaskedProduct`, for a mask under which row `i` keeps only its first `lim + a·i`
    /// columns: the first computes, per register tile, only the 16-column vectors the tile's last
    /// row keeps (leaving the other elements of `C` as they were); the second reduces each tile
    /// over only that many terms (the left operand is 0 past them), with any accumulation.
    /// Without AVX-512 `blk_gemm_cl` computes every column and `blk_gemm_kl` cuts the reduction 8
    /// rows at a time.
    /// With AVX2 and FMA (no AVX-512) it walks 16-column strips register-blocked 6 rows × 16
    /// columns (12 `ymm` accumulators, 2 loads and 6 broadcasts per 12 FMAs; `vmaskmovps` for a
    /// partial strip); `blk_gemm_pf` does not prefetch there. Without either, a scalar loop that
    /// gcc vectorises along `j` stands in.
    public static let dot = #"""
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
        """#
}
