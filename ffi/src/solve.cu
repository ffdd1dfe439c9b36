// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// The GPTQ solve (AutoGPTQ `fasterquant`), in the order of the WASM solver
// (crates/gptq-core/src/gptq/solver.rs) and the WebGPU one (wgsl/gptq_solve_*.wgsl), f32:
//
//   gptq_solve_check    the diagonal of H and the first non-finite entry (the host decides
//                       dead columns, the act-order permutation and the damping from them)
//   gptq_solve_factor   U, the upper Cholesky factor of the damped, permuted H⁻¹ (H⁻¹ = UᵀU):
//                       J·Hp·J = L·Lᵀ (J reverses the index order) by a blocked Cholesky
//                       (64-column diagonal blocks in shared memory, panel solves, trailing
//                       updates as GEMMs), L⁻¹ by blocks from the last, then U = J·L⁻¹·J. This
//                       is cholesky → cholesky_inverse → cholesky(upper) without the second
//                       factorization. The first failing pivot goes to a device word.
//   gptq_solve_columns  the blocked column loop on a band of rows: the weight permuted to the
//                       processing order (dead columns zeroed), group parameters (per row,
//                       dynamic from the block-start weights, static), one thread per row
//                       through a block of <= 128 columns with the block in shared memory,
//                       then the lazy batch update W[:, i2:] −= Err·U[i1:i2, i2:] as a GEMM.
//   gptq_solve_error_sums  Σ_k (D·H)[m, k]·D[m, k] per row (the report's weighted errors)
//
// Exactness: the integer code is round_half_even(x / scale) with IEEE division (nvcc's
// default -prec-div; HIP's default correctly rounded division; the CPU's), and products whose
// rounding decides codes or the error feedback are kept apart from additions (no FMA
// contraction: __fmul_rn on CUDA, `fp contract(off)` on HIP), as in Rust and torch.
// No kernel here depends on the warp size: threads cooperate only through shared memory.
#include "common.cuh"

#if defined(__HIPCC__) && !defined(GPTQ_HIP_CPU)
#pragma clang fp contract(off)
#endif

namespace gptq {
namespace {

constexpr uint32_t NO_FAIL = 0xffffffffu;
constexpr int NB = 64;         // Cholesky / inverse diagonal block
constexpr int MAXB = GPTQ_SOLVE_MAX_BLOCK;  // largest blocksize of the column loop
constexpr int COL_ROWS = 64;   // rows (threads) per block of the column kernel

/** a·b rounded on its own (never fused into a neighbouring add). */
GPTQ_DI float mul_rn(float a, float b) {
#if defined(__CUDACC__) && !defined(__HIPCC__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

GPTQ_DI uint32_t f2u(float v) {
#if defined(GPTQ_HIP_CPU)
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
#else
  return __float_as_uint(v);
#endif
}

GPTQ_DI bool finite(float v) { return (f2u(v) & 0x7f800000u) != 0x7f800000u; }

// ------------------------------------------------------------------ check

__global__ void __launch_bounds__(BLOCK)
    check_kernel(const float* __restrict__ h, int K, uint32_t* __restrict__ out) {
  const uint64_t n = (uint64_t)K * K;
  for (uint64_t i = (uint64_t)blockIdx.x * BLOCK + threadIdx.x; i < n;
       i += (uint64_t)gridDim.x * BLOCK) {
    const float v = h[i];
    if (!finite(v)) atomicMin(out, (uint32_t)i);
    const uint64_t r = i / K;
    if (i == r * K + r) out[1 + r] = f2u(v);
  }
}

// ------------------------------------------------------------------ GEMM (strided, f32)
// C[m, n] = [C +] alpha·Σ_k A[m, k]·B(k, n), B(k, n) = b[k·ldb + n], or b[n·ldb + k] when
// transB. tri 1: only C's lower triangle (n <= m) is computed and written; tri 2: A is lower
// triangular (the k-range of a row tile stops at its last row).

template <int TM, int TN>
__global__ void __launch_bounds__(256)
    sgemm_kernel(int M, int N, int Kd, const float* __restrict__ a, int lda,
                 const float* __restrict__ b, int ldb, int transB, float* c, int ldc,
                 float alpha, int accumulate, int tri) {
  constexpr int BM = 16 * TM, BN = 16 * TN, BK = 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  if (tri == 1 && n0 > m0 + BM - 1) return;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) acc[i][j] = 0.f;
  const int kend = tri == 2 ? min(Kd, m0 + BM) : Kd;
  for (int k0 = 0; k0 < kend; k0 += BK) {
    for (int e = tid; e < BM * BK; e += 256) {
      const int r = e / BK, kk = e % BK, m = m0 + r, k = k0 + kk;
      As[kk][r] = (m < M && k < Kd) ? a[(size_t)m * lda + k] : 0.f;
    }
    if (transB) {
      for (int e = tid; e < BN * BK; e += 256) {
        const int r = e / BK, kk = e % BK, n = n0 + r, k = k0 + kk;
        Bs[kk][r] = (n < N && k < Kd) ? b[(size_t)n * ldb + k] : 0.f;
      }
    } else {
      for (int e = tid; e < BN * BK; e += 256) {
        const int kk = e / BN, r = e % BN, n = n0 + r, k = k0 + kk;
        Bs[kk][r] = (n < N && k < Kd) ? b[(size_t)k * ldb + n] : 0.f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
      float av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; i++) av[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; j++) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; i++) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; j++) {
      const int n = n0 + tx + 16 * j;
      if (n >= N || (tri == 1 && n > m)) continue;
      float* p = c + (size_t)m * ldc + n;
      const float v = alpha * acc[i][j];
      *p = accumulate ? *p + v : v;
    }
  }
}

int sgemm(const char* what, int M, int N, int Kd, const float* a, int lda, const float* b,
          int ldb, bool transB, float* c, int ldc, float alpha, bool accumulate, int tri) {
  if (M <= 0 || N <= 0) return 0;
  if (M >= 512 && N >= 512) {
    dim3 grid((N + 127) / 128, (M + 127) / 128);
    GPU_LAUNCH((sgemm_kernel<8, 8>), grid, 256, stream(), M, N, Kd, a, lda, b, ldb,
               transB ? 1 : 0, c, ldc, alpha, accumulate ? 1 : 0, tri);
  } else {
    dim3 grid((N + 63) / 64, (M + 63) / 64);
    GPU_LAUNCH((sgemm_kernel<4, 4>), grid, 256, stream(), M, N, Kd, a, lda, b, ldb,
               transB ? 1 : 0, c, ldc, alpha, accumulate ? 1 : 0, tri);
  }
  return launched(what);
}

// ------------------------------------------------------------------ factor

/** M[a][b] = Hp[K−1−a][K−1−b] below the diagonal, diag'[perm[K−1−a]] + damp on it, 0 above. */
__global__ void __launch_bounds__(256)
    fill_kernel(const float* __restrict__ h, int K, const int32_t* __restrict__ perm,
                const float* __restrict__ diag, float damp, float* __restrict__ m) {
  const int b = blockIdx.x * 16 + threadIdx.x % 16, a = blockIdx.y * 16 + threadIdx.x / 16;
  if (a >= K || b >= K) return;
  float v = 0.f;
  if (b < a) {
    v = h[(size_t)perm[K - 1 - a] * K + perm[K - 1 - b]];
  } else if (a == b) {
    v = diag[perm[K - 1 - a]] + damp;
  }
  m[(size_t)a * K + b] = v;
}

/** Cholesky of the diagonal block at (k0, k0) (kb <= NB) in shared memory. */
__global__ void __launch_bounds__(256)
    chol_diag_kernel(float* __restrict__ m, int K, int k0, int kb, uint32_t* __restrict__ status) {
  __shared__ float S[NB][NB + 1];
  const int tid = threadIdx.x;
  for (int e = tid; e < kb * kb; e += 256) S[e / kb][e % kb] = m[(size_t)(k0 + e / kb) * K + k0 + e % kb];
  __syncthreads();
  for (int j = 0; j < kb; j++) {
    const float d = S[j][j];
    if (tid == 0 && !(d > 0.f && finite(d))) atomicMin(status, (uint32_t)(k0 + j));
    const float ljj = sqrtf(d);
    for (int r = j + 1 + tid; r < kb; r += 256) S[r][j] = S[r][j] / ljj;
    __syncthreads();
    if (tid == 0) S[j][j] = ljj;
    const int n = kb - j - 1;
    for (int e = tid; e < n * n; e += 256) {
      const int r = j + 1 + e / n, c = j + 1 + e % n;
      if (c <= r) S[r][c] = S[r][c] - mul_rn(S[r][j], S[c][j]);
    }
    __syncthreads();
  }
  for (int e = tid; e < kb * kb; e += 256) {
    const int r = e / kb, c = e % kb;
    m[(size_t)(k0 + r) * K + k0 + c] = c <= r ? S[r][c] : 0.f;
  }
}

/** L21 = A21·L11⁻ᵀ for rows k0+kb.., one thread per row (forward substitution). */
__global__ void __launch_bounds__(64)
    chol_panel_kernel(float* __restrict__ m, int K, int k0, int kb) {
  __shared__ float S[NB][NB + 1];
  const int tid = threadIdx.x;
  for (int e = tid; e < kb * kb; e += 64) S[e / kb][e % kb] = m[(size_t)(k0 + e / kb) * K + k0 + e % kb];
  __syncthreads();
  const int i = k0 + kb + blockIdx.x * 64 + tid;
  if (i >= K) return;
  float* row = m + (size_t)i * K + k0;
  float v[NB];
#pragma unroll
  for (int j = 0; j < NB; j++) v[j] = j < kb ? row[j] : 0.f;
#pragma unroll
  for (int j = 0; j < NB; j++) {
    if (j < kb) {
      float x = v[j];
#pragma unroll
      for (int p = 0; p < j; p++) x -= mul_rn(v[p], S[j][p]);
      v[j] = x / S[j][j];
    }
  }
#pragma unroll
  for (int j = 0; j < NB; j++)
    if (j < kb) row[j] = v[j];
}

/** The lower-triangular diagonal block at (k0, k0) := its inverse. */
__global__ void __launch_bounds__(64) tri_inv_diag_kernel(float* __restrict__ m, int K, int k0, int kb) {
  __shared__ float S[NB][NB + 1];
  const int tid = threadIdx.x;
  for (int e = tid; e < kb * kb; e += 64) S[e / kb][e % kb] = m[(size_t)(k0 + e / kb) * K + k0 + e % kb];
  __syncthreads();
  // Columns from the last: X[j][j] = 1/L[j][j]; X[r][j] = −X[j][j]·Σ_{j<c<=r} X[r][c]·L[c][j].
  for (int jj = 0; jj < kb; jj++) {
    const int j = kb - 1 - jj;
    const float inv = 1.f / S[j][j];
    const int r = j + 1 + tid;
    float y = 0.f;
    if (r < kb) {
      for (int c = j + 1; c <= r; c++) y += mul_rn(S[r][c], S[c][j]);
    }
    __syncthreads();
    if (r < kb) S[r][j] = mul_rn(-inv, y);
    if (tid == 0) S[j][j] = inv;
    __syncthreads();
  }
  for (int e = tid; e < kb * kb; e += 64) {
    const int r = e / kb, c = e % kb;
    if (c <= r) m[(size_t)(k0 + r) * K + k0 + c] = S[r][c];
  }
}

/** U = J·L⁻¹·J in place (the strictly lower part becomes 0). */
__global__ void __launch_bounds__(256) flip_kernel(float* __restrict__ m, int K) {
  const int j = blockIdx.x * 16 + threadIdx.x % 16, i = blockIdx.y * 16 + threadIdx.x / 16;
  if (i >= K || j > i) return;
  const int pi = K - 1 - i, pj = K - 1 - j;
  if (i == j) {
    if (i < pi) {
      const float t = m[(size_t)i * K + i];
      m[(size_t)i * K + i] = m[(size_t)pi * K + pi];
      m[(size_t)pi * K + pi] = t;
    }
    return;
  }
  m[(size_t)pi * K + pj] = m[(size_t)i * K + j];
  m[(size_t)i * K + j] = 0.f;
}

// ------------------------------------------------------------------ quantizer

struct QCfg {
  int K, rows, G, gw, bs, mode;  // mode 0: one group per row; 1: dynamic; 2: static groups
  float maxq;
  int sym, mse_steps;
  float norm;
  const float* mse;     // shrink factors [mse_steps]
  const uint8_t* dead;  // [K], original order
  const int32_t* perm;  // [K]
};

GPTQ_DI float code_of(float x, float s, float z, float maxq) {
  return fminf(fmaxf(rintf(x / s) + z, 0.f), maxq);
}

GPTQ_DI void range_params(float xmin, float xmax, const QCfg& c, float& s, float& z) {
  s = (xmax - xmin) / c.maxq;
  z = c.sym ? (c.maxq + 1.f) / 2.f : rintf(-xmin / s);
}

/** find_params over x[0..len) (stride 1), dead columns read as 0 when zero_dead (orig order). */
GPTQ_DI void find_params(const float* x, int c0, int len, bool zero_dead, const QCfg& c,
                         float& s, float& z) {
  float xmin = 0.f, xmax = 0.f;
  for (int i = 0; i < len; i++) {
    const float v = (zero_dead && c.dead[c0 + i]) ? 0.f : x[c0 + i];
    xmin = fminf(xmin, v);
    xmax = fmaxf(xmax, v);
  }
  if (c.sym) {
    xmax = fmaxf(xmax, fabsf(xmin));
    if (xmin < 0.f) xmin = -xmax;
  }
  if (xmin == 0.f && xmax == 0.f) {
    xmin = -1.f;
    xmax = 1.f;
  }
  range_params(xmin, xmax, c, s, z);
  if (c.mse_steps > 0) {
    double best = 0.0;
    for (int k = 0; k < c.mse_steps; k++) {
      const float p = c.mse[k];
      float cs, cz;
      range_params(mul_rn(p, xmin), mul_rn(p, xmax), c, cs, cz);
      if (c.sym) cz = z;
      double err = 0.0;
      for (int i = 0; i < len; i++) {
        const float v = (zero_dead && c.dead[c0 + i]) ? 0.f : x[c0 + i];
        const float q = mul_rn(cs, code_of(v, cs, cz, c.maxq) - cz);
        err += pow((double)fabsf(q - v), (double)c.norm);
      }
      if (k == 0 || err < best) {
        best = err;
        s = cs;
        z = cz;
      }
    }
  }
}

/** wp[r][i] = dead[perm[i]] ? 0 : w[r][perm[i]]. */
__global__ void __launch_bounds__(256)
    permute_kernel(const float* __restrict__ w, float* __restrict__ wp, QCfg c) {
  const int i = blockIdx.x * 16 + threadIdx.x % 16, r = blockIdx.y * 16 + threadIdx.x / 16;
  if (i >= c.K || r >= c.rows) return;
  const int src = c.perm[i];
  wp[(size_t)r * c.K + i] = c.dead[src] ? 0.f : w[(size_t)r * c.K + src];
}

/** Parameters computed up front: one group per row (mode 0) or static groups (mode 2). */
__global__ void __launch_bounds__(64)
    params_rows_kernel(const float* __restrict__ w, float* __restrict__ scale,
                       float* __restrict__ zero, QCfg c) {
  const int64_t idx = (int64_t)blockIdx.x * 64 + threadIdx.x;
  if (idx >= (int64_t)c.rows * c.G) return;
  const int r = (int)(idx / c.G), g = (int)(idx % c.G);
  const int c0 = g * c.gw, len = min(c.gw, c.K - c0);
  float s, z;
  find_params(w + (size_t)r * c.K, c0, len, c.mode == 2, c, s, z);
  scale[idx] = s;
  zero[idx] = z;
}

/** One block [i1, i1+count) of the column loop, one thread per row. */
__global__ void __launch_bounds__(COL_ROWS)
    columns_kernel(const float* __restrict__ wp, const float* __restrict__ u,
                   float* __restrict__ err, uint8_t* __restrict__ codes,
                   float* __restrict__ scale, float* __restrict__ zero,
                   float* __restrict__ loss, int i1, int count, QCfg c) {
  __shared__ float tile[MAXB][COL_ROWS];
  const int lid = threadIdx.x, r = blockIdx.x * COL_ROWS + lid;
  if (r >= c.rows) return;
  const int K = c.K, G = c.G;
  const float* row = wp + (size_t)r * K;
  for (int i = 0; i < count; i++) tile[i][lid] = row[i1 + i];
  float s = 1.f, z = 0.f;
  if (c.mode == 0) {
    s = scale[(size_t)r * G];
    z = zero[(size_t)r * G];
  } else if (c.mode == 1 && i1 / c.gw < G) {
    // The group that is open at the block start (opened in an earlier block).
    s = scale[(size_t)r * G + i1 / c.gw];
    z = zero[(size_t)r * G + i1 / c.gw];
  }
  float l = loss[r];
  for (int i = 0; i < count; i++) {
    const int col = i1 + i, oc = c.perm[col];
    if (c.mode == 2) {
      s = scale[(size_t)r * G + oc / c.gw];
      z = zero[(size_t)r * G + oc / c.gw];
    } else if (c.mode == 1 && col % c.gw == 0) {
      // AutoGPTQ's quirk: the parameters come from the outer W (block-start values).
      find_params(row, col, min(c.gw, K - col), false, c, s, z);
      scale[(size_t)r * G + col / c.gw] = s;
      zero[(size_t)r * G + col / c.gw] = z;
    }
    const float x = tile[i][lid];
    const float code = code_of(x, s, z, c.maxq);
    const float q = mul_rn(s, code - z);
    codes[(size_t)r * K + oc] = (uint8_t)code;
    const float* ur = u + (size_t)col * K;
    const float d = ur[col];
    const float diff = x - q;
    l += mul_rn(diff, diff) / mul_rn(d, d) / 2.f;
    const float e = diff / d;
    err[(size_t)r * c.bs + i] = e;
    for (int j = i + 1; j < count; j++) tile[j][lid] -= mul_rn(e, ur[i1 + j]);
  }
  loss[r] = l;
}

/** out[m] = Σ_k y[m, k]·d[m, k], one block per row. */
__global__ void __launch_bounds__(BLOCK)
    rowdot_kernel(const float* __restrict__ y, const float* __restrict__ d, int K,
                  float* __restrict__ out) {
  __shared__ float red[BLOCK];
  const size_t base = (size_t)blockIdx.x * K;
  float acc = 0.f;
  for (int k = threadIdx.x; k < K; k += BLOCK) acc += y[base + k] * d[base + k];
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int o = BLOCK / 2; o > 0; o >>= 1) {
    if ((int)threadIdx.x < o) red[threadIdx.x] += red[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

}  // namespace
}  // namespace gptq

using namespace gptq;

GPTQ_API int gptq_solve_check(uint64_t h, int32_t K, uint64_t out) {
  if (!ready("gptq_solve_check")) return GPTQ_E_NOT_INITIALIZED;
  if (!h || !out || K <= 0 || K > 65535) {
    return invalid("gptq_solve_check: bad argument (K %d, at most 65535)", K);
  }
  int s = check(gpuMemsetAsync(dptr<void>(out), 0xff, 4, stream()), "gptq_solve_check");
  if (s) return s;
  const uint64_t n = (uint64_t)K * K;
  GPU_LAUNCH(check_kernel, blocks_for(n < 65536ull * BLOCK ? n : 65536ull * BLOCK, BLOCK), BLOCK,
             stream(), dptr<const float>(h), K, dptr<uint32_t>(out));
  return launched("gptq_solve_check");
}

GPTQ_API uint64_t gptq_solve_factor_scratch_bytes(int32_t K) {
  return K <= 0 ? 0 : (uint64_t)K * NB * 4;
}

GPTQ_API int gptq_solve_factor(uint64_t h, int32_t K, uint64_t perm, uint64_t diag, float damp,
                               uint64_t u, uint64_t scratch, uint64_t status) {
  if (!ready("gptq_solve_factor")) return GPTQ_E_NOT_INITIALIZED;
  if (!h || !perm || !diag || !u || !scratch || !status || K <= 0 || K > 65535 || h == u) {
    return invalid("gptq_solve_factor: bad argument (K %d)", K);
  }
  int s = check(gpuMemsetAsync(dptr<void>(status), 0xff, 4, stream()), "gptq_solve_factor");
  if (s) return s;
  float* m = dptr<float>(u);
  float* sc = dptr<float>(scratch);
  uint32_t* st = dptr<uint32_t>(status);
  const dim3 sq((K + 15) / 16, (K + 15) / 16);
  GPU_LAUNCH(fill_kernel, sq, 256, stream(), dptr<const float>(h), K, dptr<const int32_t>(perm),
             dptr<const float>(diag), damp, m);
  if ((s = launched("gptq_solve_factor: fill"))) return s;
  for (int k0 = 0; k0 < K; k0 += NB) {
    const int kb = min(NB, K - k0), rest = K - k0 - kb;
    GPU_LAUNCH(chol_diag_kernel, 1, 256, stream(), m, K, k0, kb, st);
    if ((s = launched("gptq_solve_factor: cholesky"))) return s;
    if (rest == 0) continue;
    GPU_LAUNCH(chol_panel_kernel, (rest + 63) / 64, 64, stream(), m, K, k0, kb);
    if ((s = launched("gptq_solve_factor: cholesky panel"))) return s;
    const size_t o21 = (size_t)(k0 + kb) * K + k0;
    s = sgemm("gptq_solve_factor: trailing update", rest, rest, kb, m + o21, K, m + o21, K, true,
              m + o21 + kb, K, -1.f, true, 1);
    if (s) return s;
  }
  for (int j = ((K - 1) / NB) * NB; j >= 0; j -= NB) {
    const int jb = min(NB, K - j), rest = K - j - jb;
    GPU_LAUNCH(tri_inv_diag_kernel, 1, 64, stream(), m, K, j, jb);
    if ((s = launched("gptq_solve_factor: inverse"))) return s;
    if (rest == 0) continue;
    const size_t o22 = (size_t)(j + jb) * K + j + jb, o21 = (size_t)(j + jb) * K + j;
    s = sgemm("gptq_solve_factor: inverse panel", rest, jb, rest, m + o22, K, m + o21, K, false,
              sc, jb, 1.f, false, 2);
    if (s) return s;
    s = sgemm("gptq_solve_factor: inverse panel", rest, jb, jb, sc, jb, m + (size_t)j * K + j, K,
              false, m + o21, K, -1.f, false, 0);
    if (s) return s;
  }
  GPU_LAUNCH(flip_kernel, sq, 256, stream(), m, K);
  return launched("gptq_solve_factor: flip");
}

GPTQ_API uint64_t gptq_solve_columns_scratch_bytes(int32_t rows, int32_t K, int32_t blocksize) {
  if (rows <= 0 || K <= 0 || blocksize <= 0) return 0;
  const uint64_t wp = ((uint64_t)rows * K * 4 + 255) / 256 * 256;
  return wp + (uint64_t)rows * blocksize * 4;
}

GPTQ_API int gptq_solve_columns(uint64_t w, int32_t rows, int32_t K, uint64_t u, uint64_t perm,
                                uint64_t dead, uint64_t mse, int32_t mse_steps, int32_t bits,
                                int32_t group_size, int32_t sym, int32_t static_groups,
                                int32_t blocksize, uint64_t scratch, uint64_t codes,
                                uint64_t scale, uint64_t zero, uint64_t loss) {
  if (!ready("gptq_solve_columns")) return GPTQ_E_NOT_INITIALIZED;
  if (!w || !u || !perm || !dead || !scratch || !codes || !scale || !zero || !loss || rows <= 0 ||
      K <= 0 || K > 65535 || (mse_steps > 0 && !mse) || mse_steps < 0) {
    return invalid("gptq_solve_columns: bad argument (rows %d, K %d)", rows, K);
  }
  if (!(bits == 2 || bits == 3 || bits == 4 || bits == 8) || blocksize < 1 || blocksize > MAXB ||
      !(group_size == -1 || group_size > 0)) {
    return invalid("gptq_solve_columns: bits %d, blocksize %d (1..%d), group_size %d", bits,
                   blocksize, MAXB, group_size);
  }
  QCfg c;
  c.K = K;
  c.rows = rows;
  c.gw = group_size > 0 ? group_size : K;
  c.G = (K + c.gw - 1) / c.gw;
  c.bs = blocksize;
  c.mode = group_size <= 0 ? 0 : static_groups ? 2 : 1;
  c.maxq = (float)((1u << bits) - 1);
  c.sym = sym ? 1 : 0;
  c.mse_steps = mse_steps;
  c.norm = 2.4f;
  c.mse = dptr<const float>(mse);
  c.dead = dptr<const uint8_t>(dead);
  c.perm = dptr<const int32_t>(perm);
  float* wp = dptr<float>(scratch);
  float* err = wp + ((uint64_t)rows * K * 4 + 255) / 256 * 64;
  int s = check(gpuMemsetAsync(dptr<void>(loss), 0, (size_t)rows * 4, stream()),
                "gptq_solve_columns");
  if (s) return s;
  GPU_LAUNCH(permute_kernel, dim3((K + 15) / 16, (rows + 15) / 16), 256, stream(),
             dptr<const float>(w), wp, c);
  if ((s = launched("gptq_solve_columns: permute"))) return s;
  if (c.mode != 1) {
    GPU_LAUNCH(params_rows_kernel, blocks_for((uint64_t)rows * c.G, 64), 64, stream(),
               dptr<const float>(w), dptr<float>(scale), dptr<float>(zero), c);
    if ((s = launched("gptq_solve_columns: params"))) return s;
  }
  const float* U = dptr<const float>(u);
  for (int i1 = 0; i1 < K; i1 += blocksize) {
    const int count = min(blocksize, K - i1), i2 = i1 + count;
    GPU_LAUNCH(columns_kernel, (rows + COL_ROWS - 1) / COL_ROWS, COL_ROWS, stream(), wp, U, err,
               dptr<uint8_t>(codes), dptr<float>(scale), dptr<float>(zero), dptr<float>(loss), i1,
               count, c);
    if ((s = launched("gptq_solve_columns: columns"))) return s;
    if (i2 < K) {
      // Lazy batch update: W[:, i2:] −= Err · U[i1:i2, i2:].
      s = sgemm("gptq_solve_columns: update", rows, K - i2, count, err, blocksize,
                U + (size_t)i1 * K + i2, K, false, wp + i2, K, -1.f, true, 0);
      if (s) return s;
    }
  }
  return 0;
}

GPTQ_API int gptq_solve_error_sums(uint64_t h, int32_t K, uint64_t d, int32_t M, uint64_t y,
                                   uint64_t out) {
  if (!ready("gptq_solve_error_sums")) return GPTQ_E_NOT_INITIALIZED;
  if (!h || !d || !y || !out || K <= 0 || M <= 0) {
    return invalid("gptq_solve_error_sums: bad argument (M %d, K %d)", M, K);
  }
  int s = sgemm("gptq_solve_error_sums", M, K, K, dptr<const float>(d), K, dptr<const float>(h),
                K, false, dptr<float>(y), K, 1.f, false, 0);
  if (s) return s;
  GPU_LAUNCH(rowdot_kernel, M, BLOCK, stream(), dptr<const float>(y), dptr<const float>(d), K,
             dptr<float>(out));
  return launched("gptq_solve_error_sums");
}
