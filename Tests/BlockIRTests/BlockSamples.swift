/// Hand-written `.block` programs in printed (canonical) form, shared by the parser, verifier
/// and fuzz tests. Each one verifies cleanly for the `cpu` target.
enum BlockSamples {
    /// A tiled matmul with a loop over the inner dimension.
    static let matmul = """
        program matmul

        tensor A: f32[256,512] @global input
        tensor B: f32[512,384] @global input
        tensor C: f32[256,384] @global output

        kernel k0_matmul_C grid(i < 4, j < 6) {
          %0 = fill 0.0 : f32[64,64] @local
          %1 = for k in 0 ..< 8 iter(%2 = %0) : f32[64,64] @local {
            %3 = load A[i * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
            %4 = load B[k * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
            %5 = dot %3, %4 : f32[64,64] @local
            %6 = add %2, %5 : f32[64,64] @local
            yield %6
          }
          store %1 -> C[i * 64 +: 64, j * 64 +: 64]
        }

        """

    /// An online softmax: a loop carrying the running max and sum, then a loop without carried values.
    static let softmax = """
        program softmax

        tensor X: f32[4,1000,1000] @global input
        tensor Y: f32[4,1000,1000] @global output

        kernel k0_softmax_Y grid(b0 < 4, i < 16) {
          %0 = fill -inf : f32[64] @local
          %1 = fill 0.0 : f32[64] @local
          %2, %3 = for j in 0 ..< 16 iter(%4 = %0, %5 = %1) : f32[64] @local, f32[64] @local {
            %6 = load X[b0, i * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
            %7 = reduce_max %6 axis 1 : f32[64] @local
            %8 = max %4, %7 : f32[64] @local
            %9 = sub %4, %8 : f32[64] @local
            %10 = exp %9 : f32[64] @local
            %11 = mul %5, %10 : f32[64] @local
            %12 = broadcast %8 axis 1 : f32[64,64] @local
            %13 = sub %6, %12 : f32[64,64] @local
            %14 = exp %13 : f32[64,64] @local
            %15 = reduce_sum %14 axis 1 : f32[64] @local
            %16 = add %11, %15 : f32[64] @local
            yield %8, %16
          }
          %17 = recip %3 : f32[64] @local
          %18 = broadcast %2 axis 1 : f32[64,64] @local
          %19 = broadcast %17 axis 1 : f32[64,64] @local
          for j in 0 ..< 16 {
            %20 = load X[b0, i * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
            %21 = sub %20, %18 : f32[64,64] @local
            %22 = exp %21 : f32[64,64] @local
            %23 = mul %22, %19 : f32[64,64] @local
            store %23 -> Y[b0, i * 64 +: 64, j * 64 +: 64]
            yield
          }
        }

        """

    /// Masks with every predicate atom kind, a view, edge expressions with min/max and floor
    /// division, negative constants, and the special fill constants.
    static let masks = """
        program masks

        tensor S: f32[2,300,300] @global input
        tensor P: f32[2,300,300] @global output
        tensor P2: f32[600,300] @global temp view P
        tensor Z: f32[300] @global output

        kernel k0_mask grid(b < 2, i < 5, j < 5) {
          %0 = load S[b, i * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
          %1 = mask %0 at (i * 64, j * 64) if i - j >= 0 else -inf : f32[64,64] @local
          %2 = mask %1 at (i * 64, j * 64) if -i + j + 255 >= 0 && i - j == 0 else 0.0 : f32[64,64] @local
          %3 = mask %2 at (i * 64 + (-3), j * 64) if segments(100, 200) else 1e-06 : f32[64,64] @local
          %4 = mask %3 at (0, 0) if 2*i - 3*j - 7 >= 0 && segments() else inf : f32[64,64] @local
          %5 = mask %4 at (-5, max(j * 64, 1)) if true else -0.5 : f32[64,64] @local
          store %5 -> P[b, i * 64 +: 64, j * 64 +: 64]
        }

        kernel k1_edges grid(i < 10) {
          %0 = load P2[min(i * 64 + 63, 599) +: 1, (i * 64 + 63) / 128 * 2 +: 32] : f32[1,32] @local
          %1 = transpose %0 : f32[32,1] @local
          %2 = fill 0.125 : f32[] @reg
          %3 = mul %1, %2 : f32[32,1] @local
          %4 = load P2[i, max(i + (-1), 0) +: 30] : f32[30] @local
          %5 = dot %1, %0 transpose_a transpose_b : f32[1,1] @local
          store %4 -> Z[i * 30 +: 30]
        }

        """

    /// Nested loops whose bounds use the outer loop variable, scalars in registers, reductions to rank 0.
    static let nested = """
        program nested

        tensor X: f32[8,128,128] @global input
        tensor Y: f32[8,128] @global output

        kernel k0_norm_Y grid(b < 8) {
          %0 = fill 0.0 : f32[] @reg
          %1 = for r in 0 ..< 2 iter(%2 = %0) : f32[] @reg {
            %3 = for c in r ..< min(r + 2, 2) iter(%4 = %2) : f32[] @reg {
              %5 = load X[b, r * 64 +: 64, c * 64 +: 64] : f32[64,64] @local
              %6 = square %5 : f32[64,64] @local
              %7 = reduce_sum %6 axis 0 : f32[64] @local
              %8 = reduce_sum %7 axis 0 : f32[] @reg
              %9 = add %4, %8 : f32[] @reg
              yield %9
            }
            yield %3
          }
          %10 = rsqrt %1 : f32[] @reg
          %11 = fill 1.0 : f32[128] @local
          %12 = mul %11, %10 : f32[128] @local
          %13 = neg %12 : f32[128] @local
          store %13 -> Y[b, 0 +: 128]
        }

        """

    /// Every sample.
    /// Index blocks: positions along a block axis (rows, columns, a vector) and a grid point splat.
    static let positions = """
        program positions

        tensor X: f32[3,100,70] @global input
        tensor Y: f32[3,100,70] @global output
        tensor Z: f32[3,100] @global output

        kernel k0_alibi grid(b < 3, i < 4, j < 3) {
          %0 = load X[b, i * 32 +: 32, j * 32 +: 32] : f32[32,32] @local
          %1 = index i * 32 axis 0 : f32[32,32] @local
          %2 = index j * 32 + 5 axis 1 : f32[32,32] @local
          %3 = index b : f32[32,32] @local
          %4 = sub %1, %2 : f32[32,32] @local
          %5 = mul %3, %4 : f32[32,32] @local
          %6 = add %0, %5 : f32[32,32] @local
          store %6 -> Y[b, i * 32 +: 32, j * 32 +: 32]
        }

        kernel k1_vector grid(b < 3, i < 4) {
          %0 = index max(i * 32, 1) axis 0 : f32[32] @local
          %1 = index b : f32[] @reg
          %2 = add %0, %1 : f32[32] @local
          store %2 -> Z[b, i * 32 +: 32]
        }

        """

    /// A loop guarded by data: a range, links followed by a run-time mode, any and all bits.
    static let dataMasks = """
        program links

        tensor X: f32[2,20,16] @global input
        tensor M: bool[1,20,16] @global input
        tensor C: f32[2,16] @global output
        tensor M_any: bool[2,5] @global input
        tensor M_all: bool[2,5] @global input
        tensor M_range: i32[2,3] @global input
        tensor M_next: i32[2,5] @global input

        kernel k0 grid(b < 2, j < 2) {
          %0 = fill 0.0 : f32[8] @local
          %1 = fill 0.0 : f32[] @reg
          %2 = for k in 0 ..< 5 within M_range[j, 0] ..< M_range[j, 1] next M_next[j, k] when M_range[j, 2] if M_any[j, k] full M_all[j, k] true(%5) iter(%3 = %0) : f32[8] @local {
            %4 = load X[b, k * 4 +: 4, j * 8 +: 8] : f32[4,8] @local
            %5 = load M[0, k * 4 +: 4, j * 8 +: 8] : f32[4,8] @local
            %6 = select %5, %4, %1 : f32[4,8] @local
            %7 = reduce_sum %6 axis 0 : f32[8] @local
            %8 = add %3, %7 : f32[8] @local
            yield %8
          }
          store %2 -> C[b, j * 8 +: 8]
        }

        """

    static let all = [matmul, softmax, masks, nested, positions, dataMasks]
}
