extension CRuntime {
    /// The bf16 block matrix product `C (+)= op(A) · op(B)`: bf16 products accumulated in f32.
    ///
    /// `blk_gemm_bf16(m, n, kk, A, a16, ars, aks, B, b16, ks, js, C, ldc, accumulate, W)` computes
    /// `C[i][j] (+)= Σ_k A(i,k)·B(k,j)` for `i < m`, `j < n`, `k < kk`, where `A(i,k) = A[i·ars + k·aks]` and
    /// `B(k,j) = B[k·ks + j·js]` (any strides, in elements of the operand's type): an operand with its flag
    /// (`a16`, `b16`) set is `const uint16_t *` holding bf16 bits (the upper half of an f32, as bf16 tensors
    /// are stored; any 2-byte alignment), one without is `const float *` whose elements are rounded to bf16
    /// (nearest even, so an operand that is not a bf16 number is rounded, not truncated: the `dot … bf16` of
    /// the block program). `W` is scratch of `kk·n` floats from `blk_alloc`. With AVX512_BF16 it packs `B`
    /// into `W` as pairs along `k` (one 32-bit lane holds the bf16 of `B(2p,j)` low and `B(2p+1,j)` high; an
    /// odd `kk` pads with zero), vectorised for rows of `B` side by side (`js == 1`: per 16 columns, a
    /// conversion and a word interleave of floats, or two zero-extending loads and a shift of bf16 bits) and
    /// for a transposed `B` (`ks == 1`, the `K` of `Q·Kᵀ`: 16 columns of 16 pairs, converted from floats or
    /// loaded as they lie from bf16 bits, then a 16 × 16 transpose), and packs up to 24 rows of `A` a chunk
    /// of 128 pairs at a time into a stack buffer (vectorised for `aks == 1`, where bf16 bits are already
    /// pairs, and for `ars == 1`), then walks 64-column strips register-blocked 6 rows × 64 columns (24 `zmm`
    /// accumulators, 4 loads and 6 broadcasts of an `A` pair per 24 `vdpbf16ps`) and a last strip of at
    /// most 32 columns 8 rows × 32 columns. Loads are masked so that nothing past an operand's last element
    /// is read (a block may end at its tensor's end), and stores never touch memory past `C`'s `n` columns
    /// or past `W`. Without AVX512_BF16 it widens bf16 bits exactly and rounds floats, `B` into `W` and `A`,
    /// 12 rows × 256 `k` at a time, into a stack buffer, and calls the f32 `blk_gemm` (the same exact
    /// products). `blk_gemm_bf16_pf(…, W, pf, pfr, pfld, pfc)` is the same product that also prefetches into
    /// L1, a portion before each packed panel of `A`, the block the enclosing loop's next iteration reads
    /// (`pfr` rows of `pfc` elements of `B`'s type, `pfld` apart): the emitter passes it for a `B` read in
    /// place (a block of a bf16 weight streamed from L3 is otherwise a latency stall in the packing).
    public static let dotBF16 = #"""
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
        """#
}
