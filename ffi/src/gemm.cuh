// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// The tiled SIMT GEMM shared by the dense and the GPTQ linears (prefill):
//   y[M, N] = x[M, K] · Wᵀ + bias, f32 accumulation,
// with W produced tile by tile by a loader (a dtype conversion, or a GPTQ dequantization).
//
// A block of 16×16 threads computes a BM×BN tile of y (BM = 16·TM, BN = 16·TN); thread (tx, ty)
// owns rows ty + 16·i and columns tx + 16·j, so its shared-memory reads of a W row are 16
// consecutive floats (no bank conflicts) and of an x row one broadcast. Per step of BK = 32
// along K the block stages x[BM, 32] (transposed) and W[32, BN] as f32 in shared memory, then
// does 32 rank-1 updates of its TM×TN block.
#pragma once

#include "common.cuh"

namespace gptq {

constexpr int GEMM_BK = 32;

/** Shared-memory tile of the weights: Bs[k][n] for k < GEMM_BK, n < BN (+4 padding). */
template <int BN>
using BTile = float[GEMM_BK][BN + 4];

template <int TM, int TN, class Loader>
__global__ void __launch_bounds__(256)
    gemm_kernel(const float* __restrict__ x, int M, int K, int N, Loader loader,
                const float* __restrict__ bias, float* __restrict__ y) {
  constexpr int BM = 16 * TM, BN = 16 * TN, BK = GEMM_BK;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; i++)
#pragma unroll
    for (int j = 0; j < TN; j++) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    // x tile: consecutive threads read consecutive k of one row (coalesced).
    for (int e = tid; e < BM * BK; e += 256) {
      const int r = e / BK, kk = e % BK, m = m0 + r, k = k0 + kk;
      As[kk][r] = (m < M && k < K) ? x[(size_t)m * K + k] : 0.f;
    }
    loader.template load<BN>(Bs, n0, k0, N, K, tid);
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < BK; kk++) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
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
      if (n < N) y[(size_t)m * N + n] = acc[i][j] + (bias ? bias[n] : 0.f);
    }
  }
}

/** Launches gemm_kernel with 64×64 tiles for small M, 128×128 above. */
template <class Loader>
int launch_gemm(const char* what, const float* x, int M, int K, int N, const Loader& loader,
                const float* bias, float* y) {
  if (M >= 128 && N >= 128) {
    dim3 grid((N + 127) / 128, (M + 127) / 128);
    GPU_LAUNCH((gemm_kernel<8, 8, Loader>), grid, 256, stream(), x, M, K, N, loader, bias, y);
  } else {
    dim3 grid((N + 63) / 64, (M + 63) / 64);
    GPU_LAUNCH((gemm_kernel<4, 4, Loader>), grid, 256, stream(), x, M, K, N, loader, bias, y);
  }
  return launched(what);
}

}  // namespace gptq
