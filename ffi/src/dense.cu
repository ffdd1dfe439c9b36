// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// Dense linears with weights kept in their stored dtype (f32, f16, bf16):
// y[M, N] = x[M, K] · Wᵀ + bias, f32 accumulation.
// - GEMV (M <= GPTQ_DENSE_GEMV_MAX_ROWS, decode): a group of 32 lanes per output feature reads
//   its weight row with 16-byte loads (4 f32 or 8 f16/bf16), keeps MT row sums per lane and
//   adds them across the group with shuffles. 8 features per 256-thread block.
// - GEMM (prefill): gemm.cuh with a loader converting the weight tile to f32.
#include "gemm.cuh"

namespace gptq {
namespace {

template <int DT>
GPTQ_DI float welem(const void* w, size_t i) {
  if (DT == GPTQ_DTYPE_F16) return gptq_h2f(static_cast<const uint16_t*>(w)[i]);
  if (DT == GPTQ_DTYPE_BF16) return gptq_bf2f(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

/** The 4 (f32) or 8 (f16/bf16) weights of a 16-byte word. */
template <int DT>
GPTQ_DI void unpack16(const uint4 u, float* out) {
  if (DT == GPTQ_DTYPE_F32) {
    out[0] = __uint_as_float(u.x);
    out[1] = __uint_as_float(u.y);
    out[2] = __uint_as_float(u.z);
    out[3] = __uint_as_float(u.w);
    return;
  }
  const uint32_t v[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (DT == GPTQ_DTYPE_F16) {
      out[2 * i] = gptq_h2f((uint16_t)(v[i] & 0xffffu));
      out[2 * i + 1] = gptq_h2f((uint16_t)(v[i] >> 16));
    } else {
      out[2 * i] = __uint_as_float(v[i] << 16);
      out[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
    }
  }
}

constexpr int GV_FEATURES = BLOCK / 32;  // output features per GEMV block

template <int MT, int DT>
__global__ void __launch_bounds__(BLOCK)
    dense_gemv_kernel(const float* __restrict__ x, int M, int K, const void* __restrict__ w,
                      int ldw, const float* __restrict__ bias, int N, float* __restrict__ y) {
  constexpr int VEC = DT == GPTQ_DTYPE_F32 ? 4 : 8;
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * GV_FEATURES + threadIdx.x / 32;
  const bool valid = n < N;  // invalid groups still take part in the shuffles
  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; m++) acc[m] = 0.f;
  if (valid) {
    const uint4* row = reinterpret_cast<const uint4*>(
        static_cast<const char*>(w) + (size_t)n * ldw * (DT == GPTQ_DTYPE_F32 ? 4 : 2));
    const int nv = (K + VEC - 1) / VEC;
    for (int v = lane; v < nv; v += 32) {
      float wv[VEC];
      unpack16<DT>(row[v], wv);
      const int k = v * VEC;
      if (k + VEC <= K) {
#pragma unroll
        for (int m = 0; m < MT; m++) {
          if (m < M) {
            const float* xr = x + (size_t)m * K + k;
#pragma unroll
            for (int e = 0; e < VEC; e++) acc[m] = fmaf(xr[e], wv[e], acc[m]);
          }
        }
      } else {  // the row's tail (the padding up to ldw is never read from x)
        for (int m = 0; m < MT; m++) {
          if (m < M) {
            for (int e = 0; e < VEC && k + e < K; e++) {
              acc[m] = fmaf(x[(size_t)m * K + k + e], wv[e], acc[m]);
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < MT; m++) {
    const float s = group32_sum(acc[m]);
    if (valid && lane == 0 && m < M) y[(size_t)m * N + n] = s + (bias ? bias[n] : 0.f);
  }
}

/** gemm.cuh loader: W [N, ldw] in dtype DT, consecutive threads reading consecutive k. */
template <int DT>
struct DenseLoader {
  const void* w;
  int ldw;
  template <int BN>
  GPTQ_DI void load(float (*Bs)[BN + 4], int n0, int k0, int N, int K,
                                       int tid) const {
    for (int e = tid; e < BN * GEMM_BK; e += 256) {
      const int c = e / GEMM_BK, kk = e % GEMM_BK, n = n0 + c, k = k0 + kk;
      Bs[kk][c] = (n < N && k < K) ? welem<DT>(w, (size_t)n * ldw + k) : 0.f;
    }
  }
};

template <int DT>
int dense_linear(const float* x, int M, int K, const void* w, int ldw, const float* bias, int N,
                 float* y) {
  if (M > GPTQ_DENSE_GEMV_MAX_ROWS) {
    return launch_gemm("dense gemm_kernel", x, M, K, N, DenseLoader<DT>{w, ldw}, bias, y);
  }
  const unsigned grid = (unsigned)((N + GV_FEATURES - 1) / GV_FEATURES);
  if (M == 1) {
    GPU_LAUNCH((dense_gemv_kernel<1, DT>), grid, BLOCK, stream(), x, M, K, w, ldw, bias, N, y);
  } else if (M == 2) {
    GPU_LAUNCH((dense_gemv_kernel<2, DT>), grid, BLOCK, stream(), x, M, K, w, ldw, bias, N, y);
  } else {
    GPU_LAUNCH((dense_gemv_kernel<4, DT>), grid, BLOCK, stream(), x, M, K, w, ldw, bias, N, y);
  }
  return launched("dense_gemv_kernel");
}

}  // namespace
}  // namespace gptq

using namespace gptq;

GPTQ_API int gptq_dense_linear(uint64_t x, int32_t M, int32_t K, uint64_t w, int32_t dtype,
                               int32_t ldw, uint64_t bias, int32_t N, uint64_t y) {
  if (!ready("gptq_dense_linear")) return GPTQ_E_NOT_INITIALIZED;
  if (M <= 0 || N <= 0) return 0;
  if (!x || !w || !y || K <= 0 || ldw < K || ldw % 8 != 0 || (w & 15) != 0) {
    return invalid("gptq_dense_linear: bad argument (K %d, ldw %d, weight address %% 16 = %d)", K,
                   ldw, (int)(w & 15));
  }
  const float* xp = dptr<const float>(x);
  const float* bp = dptr<const float>(bias);
  float* yp = dptr<float>(y);
  switch (dtype) {
    case GPTQ_DTYPE_F32:
      return dense_linear<GPTQ_DTYPE_F32>(xp, M, K, dptr<const void>(w), ldw, bp, N, yp);
    case GPTQ_DTYPE_F16:
      return dense_linear<GPTQ_DTYPE_F16>(xp, M, K, dptr<const void>(w), ldw, bp, N, yp);
    case GPTQ_DTYPE_BF16:
      return dense_linear<GPTQ_DTYPE_BF16>(xp, M, K, dptr<const void>(w), ldw, bp, N, yp);
    default:
      return invalid("gptq_dense_linear: unknown dtype %d", dtype);
  }
}
