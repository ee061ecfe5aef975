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
/* C[i][j] (+)= sum_k A[i*ars + k*aks] * B[k*ldb + j]: each thread owns output elements */
__device__ __forceinline__ void blk_gemm(long m, long n, long kk, const float *__restrict__ A,
                                                long ars, long aks, const float *__restrict__ B, long ldb,
                                                float *__restrict__ C, long ldc, int accumulate) {
    for (long f = threadIdx.x; f < m * n; f += blockDim.x) {
        long i = f / n, j = f % n;
        float acc = accumulate ? C[i * ldc + j] : 0.0f;
        const float *a = A + i * ars;
        const float *b = B + j;
        for (long k = 0; k < kk; k++) acc = fmaf(a[k * aks], b[k * ldb], acc);
        C[i * ldc + j] = acc;
    }
}
