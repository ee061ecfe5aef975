/* ---- runtime (device): index arithmetic, max/min, math ---- */
__device__ __forceinline__ long blk_floordiv(long a, long b) {
    long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
__device__ __forceinline__ long blk_imin(long a, long b) { return a < b ? a : b; }
__device__ __forceinline__ long blk_imax(long a, long b) { return a > b ? a : b; }
__device__ __forceinline__ long blk_extent(long d, long start, long n) {
    long e = d - start;
    return e < 0 ? 0 : (e > n ? n : e);
}
__device__ __forceinline__ float blk_maxf(float a, float b) {
    float m = a > b ? a : b;
    return a != a ? a : m;
}
__device__ __forceinline__ float blk_minf(float a, float b) {
    float m = a < b ? a : b;
    return a != a ? a : m;
}
__device__ __forceinline__ float blk_expf(float x) { return expf(x); }
__device__ __forceinline__ float blk_tanhf(float x) { return tanhf(x); }
__device__ __forceinline__ float blk_logf(float x) { return logf(x); }
__device__ __forceinline__ float blk_log1pf(float x) { return log1pf(x); }
__device__ __forceinline__ float blk_sinf(float x) { return sinf(x); }
__device__ __forceinline__ float blk_cosf(float x) { return cosf(x); }
__device__ __forceinline__ float blk_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float blk_siluf(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float blk_geluf(float x) {
    const float c = 0.79788456f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}
/* ---- runtime (device): warp reductions; every lane gets the result ---- */
__device__ __forceinline__ float blk_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float blk_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = blk_maxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* ---- runtime (device): cooperative block dot; all threads of the block call it ---- */
/* S[k][j] = B[k*ks + j*js] for k < kk, j < n */
__device__ __forceinline__ void blk_pack(long kk, long n, const float *__restrict__ B, long ks,
                                                long js, float *__restrict__ S, long lds) {
    for (long f = threadIdx.x; f < kk * n; f += blockDim.x) {
        long k = f / n, j = f % n;
        S[k * lds + j] = B[k * ks + j * js];
    }
}
/* C[i][j] (+)= sum_k A[i*ars + k*aks] * B[k*ldb + j], register-tiled: each thread owns TRxTC tiles of C (tile
   q = threadIdx.x + s*blockDim.x, row-major over ceil(n/TC) tile columns; 4x4, or 4x1 for outputs too small to
   give every thread a 4x4 tile) and accumulates them in registers, k ascending (the sum of the scalar product,
   fmaf by fmaf); a full tile reads A's rows as float4, four k at a time (and B's rows as float4 when TC is 4),
   when they are unit-stride and 16-byte aligned, else (and for k past a multiple of 4, and at the edges) one
   float at a time; R (blk_gemm_bf16) rounds each operand element to bf16 first */
__device__ __forceinline__ float blk_round_bf16(float x) {
    const unsigned int u = __float_as_uint(x);
    return x != x ? x : __uint_as_float((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
}
template <bool R, int TR, int TC>
__device__ __forceinline__ void blk_gemm_t(long m, long n, long kk, const float *__restrict__ A, long ars,
                                           long aks, const float *__restrict__ B, long ldb,
                                           float *__restrict__ C, long ldc, int accumulate) {
    const int tn = (int)((n + TC - 1) / TC), tiles = (int)((m + TR - 1) / TR) * tn; /* int: fewer registers */
    const bool vector = aks == 1 && ars % 4 == 0 && ((uintptr_t)A & 15) == 0 &&
                        (TC != 4 || (ldb % 4 == 0 && ((uintptr_t)B & 15) == 0));
    for (int q = threadIdx.x; q < tiles; q += blockDim.x) {
        const int i0 = q / tn * TR, j0 = q % tn * TC;
        const bool full = i0 + TR <= m && j0 + TC <= n;
        float acc[TR][TC];
#pragma unroll
        for (int r = 0; r < TR; r++)
#pragma unroll
            for (int c = 0; c < TC; c++)
                acc[r][c] = accumulate && i0 + r < m && j0 + c < n ? C[(i0 + r) * ldc + j0 + c] : 0.0f;
        int k = 0;
        if (full && vector) {
#pragma unroll 1
            for (; k + 4 <= kk; k += 4) {
                float a[TR][4], b[4][TC];
#pragma unroll
                for (int r = 0; r < TR; r++) {
                    const float4 x = *(const float4 *)(A + (i0 + r) * ars + k);
                    a[r][0] = x.x, a[r][1] = x.y, a[r][2] = x.z, a[r][3] = x.w;
                }
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    if constexpr (TC == 4) {
                        const float4 y = *(const float4 *)(B + (k + s) * ldb + j0);
                        b[s][0] = y.x, b[s][1] = y.y, b[s][2] = y.z, b[s][3] = y.w;
                    } else {
#pragma unroll
                        for (int c = 0; c < TC; c++) b[s][c] = B[(k + s) * ldb + j0 + c];
                    }
                }
                if (R) {
#pragma unroll
                    for (int r = 0; r < TR; r++)
#pragma unroll
                        for (int s = 0; s < 4; s++) a[r][s] = blk_round_bf16(a[r][s]);
#pragma unroll
                    for (int s = 0; s < 4; s++)
#pragma unroll
                        for (int c = 0; c < TC; c++) b[s][c] = blk_round_bf16(b[s][c]);
                }
#pragma unroll
                for (int s = 0; s < 4; s++)
#pragma unroll
                    for (int r = 0; r < TR; r++)
#pragma unroll
                        for (int c = 0; c < TC; c++) acc[r][c] = fmaf(a[r][s], b[s][c], acc[r][c]);
            }
        }
#pragma unroll 1 /* unrolling k makes ptxas spill */
        for (; k < kk; k++) {
            float a[TR], b[TC];
#pragma unroll
            for (int r = 0; r < TR; r++) a[r] = i0 + r < m ? A[(i0 + r) * ars + k * aks] : 0.0f;
#pragma unroll
            for (int c = 0; c < TC; c++) b[c] = j0 + c < n ? B[k * ldb + j0 + c] : 0.0f;
            if (R) {
#pragma unroll
                for (int r = 0; r < TR; r++) a[r] = blk_round_bf16(a[r]);
#pragma unroll
                for (int c = 0; c < TC; c++) b[c] = blk_round_bf16(b[c]);
            }
#pragma unroll
            for (int r = 0; r < TR; r++)
#pragma unroll
                for (int c = 0; c < TC; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
        }
#pragma unroll
        for (int r = 0; r < TR; r++)
#pragma unroll
            for (int c = 0; c < TC; c++)
                if (i0 + r < m && j0 + c < n) C[(i0 + r) * ldc + j0 + c] = acc[r][c];
    }
}
__device__ __forceinline__ void blk_gemm(long m, long n, long kk, const float *__restrict__ A, long ars, long aks,
                                         const float *__restrict__ B, long ldb, float *__restrict__ C, long ldc,
                                         int accumulate) {
    blk_gemm_t<false, 4, 4>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_bf16(long m, long n, long kk, const float *__restrict__ A, long ars,
                                              long aks, const float *__restrict__ B, long ldb,
                                              float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_t<true, 4, 4>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_4x1(long m, long n, long kk, const float *__restrict__ A, long ars,
                                             long aks, const float *__restrict__ B, long ldb,
                                             float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_t<false, 4, 1>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_bf16_4x1(long m, long n, long kk, const float *__restrict__ A,
                                                  long ars, long aks, const float *__restrict__ B, long ldb,
                                                  float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_t<true, 4, 1>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
/* ---- runtime (device): bf16 products on tensor cores (sm_80 and later) ---- */
/* The bf16 bits of x rounded to nearest even (as blk_round_bf16); a NaN stays a NaN (quiet, its sign kept). */
__device__ __forceinline__ uint32_t blk_bf16_bits(float x) {
    const unsigned int u = __float_as_uint(x);
    return x != x ? (u >> 16) | 0x40u : (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
/* d += a·b for one 16x8 tile, k = 16: PTX mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, a warp collective
   (all 32 lanes, converged). With g = lane / 4 and t = lane % 4, the fragments are the PTX ISA's: a[r] holds
   A(g + 8 * (r & 1), 2t + 8 * (r >> 1) + {0, 1}), b[r] holds B(2t + 8r + {0, 1}, g) (the lower k in the low
   16 bits), d[r] is D(g + 8 * (r >> 1), 2t + (r & 1)). The emulator computes it from every lane's fragments. */
__device__ __forceinline__ void blk_mma_bf16_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef BLOCKC_CUDA_EMULATOR
    blk_emu::mma_bf16_m16n8k16(d, a, b);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
/* C[i][j] (+)= sum_k bf16(A[i*ars + k*aks]) * bf16(B[k*ldb + j]) on tensor cores: each warp owns tiles of
   (16 MT) x (8 NT) outputs (tile q = warp + s * warps, row-major over the tile columns), accumulates each as
   MT x NT mma tiles in registers over k in steps of 16, and builds the fragments with plain loads, rounding
   each element to bf16 as it reads it; elements past m, n or kk are zeros, and only outputs inside m x n are
   stored. Every lane of a warp runs the same tiles, so each mma has the whole warp. */
template <int MT, int NT>
__device__ __forceinline__ void blk_gemm_mma(long m, long n, long kk, const float *__restrict__ A, long ars,
                                             long aks, const float *__restrict__ B, long ldb,
                                             float *__restrict__ C, long ldc, int accumulate) {
    const int lane = (int)(threadIdx.x & 31), g = lane >> 2, t2 = (lane & 3) * 2;
    const int tn = (int)((n + 8 * NT - 1) / (8 * NT)), tiles = (int)((m + 16 * MT - 1) / (16 * MT)) * tn;
    for (int q = (int)(threadIdx.x >> 5); q < tiles; q += (int)(blockDim.x >> 5)) {
        const int i0 = q / tn * 16 * MT, j0 = q % tn * 8 * NT;
        float acc[MT][NT][4];
#pragma unroll
        for (int s = 0; s < MT; s++)
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r >> 1), j = j0 + 8 * u + t2 + (r & 1);
                    acc[s][u][r] = accumulate && i < m && j < n ? C[(long)i * ldc + j] : 0.0f;
                }
#pragma unroll 1
        for (int k0 = 0; k0 < kk; k0 += 16) {
            uint32_t a[MT][4], b[NT][2];
#pragma unroll
            for (int s = 0; s < MT; s++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r & 1), k = k0 + t2 + 8 * (r >> 1);
                    const float *p = A + (long)i * ars + (long)k * aks;
                    const uint32_t lo = i < m && k < kk ? blk_bf16_bits(p[0]) : 0u;
                    const uint32_t hi = i < m && k + 1 < kk ? blk_bf16_bits(p[aks]) : 0u;
                    a[s][r] = lo | hi << 16;
                }
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int j = j0 + 8 * u + g, k = k0 + t2 + 8 * r;
                    const float *p = B + (long)k * ldb + j;
                    const uint32_t lo = j < n && k < kk ? blk_bf16_bits(p[0]) : 0u;
                    const uint32_t hi = j < n && k + 1 < kk ? blk_bf16_bits(p[ldb]) : 0u;
                    b[u][r] = lo | hi << 16;
                }
#pragma unroll
            for (int s = 0; s < MT; s++)
#pragma unroll
                for (int u = 0; u < NT; u++) blk_mma_bf16_m16n8k16(acc[s][u], a[s], b[u]);
        }
#pragma unroll
        for (int s = 0; s < MT; s++)
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r >> 1), j = j0 + 8 * u + t2 + (r & 1);
                    if (i < m && j < n) C[(long)i * ldc + j] = acc[s][u][r];
                }
    }
}
/* The warp tiles the schedule chooses from: blk_gemm_mma_RxC computes R x C outputs per warp and tile. */
__device__ __forceinline__ void blk_gemm_mma_16x8(long m, long n, long kk, const float *__restrict__ A, long ars,
                                                 long aks, const float *__restrict__ B, long ldb,
                                                 float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma<1, 1>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_16x16(long m, long n, long kk, const float *__restrict__ A, long ars,
                                                 long aks, const float *__restrict__ B, long ldb,
                                                 float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma<1, 2>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_32x16(long m, long n, long kk, const float *__restrict__ A, long ars,
                                                 long aks, const float *__restrict__ B, long ldb,
                                                 float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma<2, 2>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_32x32(long m, long n, long kk, const float *__restrict__ A, long ars,
                                                 long aks, const float *__restrict__ B, long ldb,
                                                 float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma<2, 4>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
/* ---- runtime (device): f32 products as TF32 on tensor cores (the --tf32 option; sm_80 and later) ---- */
/* x rounded to TF32 (a 10-bit mantissa) by cvt.rna.tf32.f32: to nearest, ties away from zero, as an f32 bit
   pattern whose low 13 bits the mma ignores (the emulator: the same rounding in integers, the low bits zero;
   infinities stay infinite, a NaN stays a NaN). */
__device__ __forceinline__ uint32_t blk_tf32_bits(float x) {
#ifdef BLOCKC_CUDA_EMULATOR
    const unsigned int u = __float_as_uint(x);
    if ((u & 0x7F800000u) == 0x7F800000u) return (u & 0x007FFFFFu) ? u | 0x00400000u : u;
    return (u + 0x1000u) & 0xFFFFE000u;
#else
    uint32_t u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return u;
#endif
}
/* d += a·b for one 16x8 tile, k = 8: PTX mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, a warp collective.
   With g = lane / 4 and t = lane % 4 (the PTX ISA's fragments for mma.m16n8k8 with .tf32): a[r] holds
   A(g + 8 * (r & 1), t + 4 * (r >> 1)), b[r] holds B(t + 4r, g), d[r] is D(g + 8 * (r >> 1), 2t + (r & 1)).
   The emulator computes it from every lane's fragments. */
__device__ __forceinline__ void blk_mma_tf32_m16n8k8(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef BLOCKC_CUDA_EMULATOR
    blk_emu::mma_tf32_m16n8k8(d, a, b);
#else
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
/* C[i][j] (+)= sum_k tf32(A[i*ars + k*aks]) * tf32(B[k*ldb + j]) on tensor cores: blk_gemm_mma's tiles and
   edges, k in steps of 8, each operand element rounded to TF32 as it is read. */
template <int MT, int NT>
__device__ __forceinline__ void blk_gemm_mma_tf32(long m, long n, long kk, const float *__restrict__ A,
                                                  long ars, long aks, const float *__restrict__ B, long ldb,
                                                  float *__restrict__ C, long ldc, int accumulate) {
    const int lane = (int)(threadIdx.x & 31), g = lane >> 2, t = lane & 3, t2 = t * 2;
    const int tn = (int)((n + 8 * NT - 1) / (8 * NT)), tiles = (int)((m + 16 * MT - 1) / (16 * MT)) * tn;
    for (int q = (int)(threadIdx.x >> 5); q < tiles; q += (int)(blockDim.x >> 5)) {
        const int i0 = q / tn * 16 * MT, j0 = q % tn * 8 * NT;
        float acc[MT][NT][4];
#pragma unroll
        for (int s = 0; s < MT; s++)
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r >> 1), j = j0 + 8 * u + t2 + (r & 1);
                    acc[s][u][r] = accumulate && i < m && j < n ? C[(long)i * ldc + j] : 0.0f;
                }
#pragma unroll 1
        for (int k0 = 0; k0 < kk; k0 += 8) {
            uint32_t a[MT][4], b[NT][2];
#pragma unroll
            for (int s = 0; s < MT; s++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r & 1), k = k0 + t + 4 * (r >> 1);
                    a[s][r] = i < m && k < kk ? blk_tf32_bits(A[(long)i * ars + (long)k * aks]) : 0u;
                }
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const int j = j0 + 8 * u + g, k = k0 + t + 4 * r;
                    b[u][r] = j < n && k < kk ? blk_tf32_bits(B[(long)k * ldb + j]) : 0u;
                }
#pragma unroll
            for (int s = 0; s < MT; s++)
#pragma unroll
                for (int u = 0; u < NT; u++) blk_mma_tf32_m16n8k8(acc[s][u], a[s], b[u]);
        }
#pragma unroll
        for (int s = 0; s < MT; s++)
#pragma unroll
            for (int u = 0; u < NT; u++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    const int i = i0 + 16 * s + g + 8 * (r >> 1), j = j0 + 8 * u + t2 + (r & 1);
                    if (i < m && j < n) C[(long)i * ldc + j] = acc[s][u][r];
                }
    }
}
__device__ __forceinline__ void blk_gemm_mma_tf32_16x8(long m, long n, long kk, const float *__restrict__ A,
                                                       long ars, long aks, const float *__restrict__ B, long ldb,
                                                       float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma_tf32<1, 1>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_tf32_16x16(long m, long n, long kk, const float *__restrict__ A,
                                                       long ars, long aks, const float *__restrict__ B, long ldb,
                                                       float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma_tf32<1, 2>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_tf32_32x16(long m, long n, long kk, const float *__restrict__ A,
                                                       long ars, long aks, const float *__restrict__ B, long ldb,
                                                       float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma_tf32<2, 2>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
__device__ __forceinline__ void blk_gemm_mma_tf32_32x32(long m, long n, long kk, const float *__restrict__ A,
                                                       long ars, long aks, const float *__restrict__ B, long ldb,
                                                       float *__restrict__ C, long ldc, int accumulate) {
    blk_gemm_mma_tf32<2, 4>(m, n, kk, A, ars, aks, B, ldb, C, ldc, accumulate);
}
