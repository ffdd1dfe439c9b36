// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// The GPTQ Hessian accumulation H = beta·H + alpha·XᵀX (AutoGPTQ's add_batch running average
// with beta = n/(n+b), alpha = 2/(n+b)), f32 accumulation.
//
// H is symmetric: a block of 16×16 threads computes one 64×64 tile (I, J) with I >= J only and
// writes it and its mirror, so both halves hold the same bits. Per step of 32 rows of X it
// stages X[rows, I-columns] and X[rows, J-columns] in shared memory (consecutive threads read
// consecutive columns: coalesced) and does 32 rank-1 updates of its 4×4 block.
#include "common.cuh"

namespace gptq {
namespace {

constexpr int HT = 64;   // tile of H
constexpr int HK = 32;   // rows of X per step

__global__ void __launch_bounds__(256)
    hessian_kernel(float* __restrict__ h, const float* __restrict__ x, int rows, int K,
                   float alpha, float beta) {
  const int bi = blockIdx.y, bj = blockIdx.x;
  if (bj > bi) return;  // the upper tiles are written as mirrors of the lower ones
  __shared__ float Xi[HK][HT + 4];
  __shared__ float Xj[HK][HT + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int i0 = bi * HT, j0 = bj * HT;
  float acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; a++)
#pragma unroll
    for (int b = 0; b < 4; b++) acc[a][b] = 0.f;
  for (int r0 = 0; r0 < rows; r0 += HK) {
    for (int e = tid; e < HK * HT; e += 256) {
      const int r = e / HT, c = e % HT, row = r0 + r;
      const bool in = row < rows;
      Xi[r][c] = (in && i0 + c < K) ? x[(size_t)row * K + i0 + c] : 0.f;
      Xj[r][c] = (in && j0 + c < K) ? x[(size_t)row * K + j0 + c] : 0.f;
    }
    __syncthreads();
#pragma unroll 4
    for (int r = 0; r < HK; r++) {
      float a[4], b[4];
#pragma unroll
      for (int u = 0; u < 4; u++) {
        a[u] = Xi[r][ty + 16 * u];
        b[u] = Xj[r][tx + 16 * u];
      }
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int i = i0 + ty + 16 * u;
    if (i >= K) continue;
#pragma unroll
    for (int v = 0; v < 4; v++) {
      const int j = j0 + tx + 16 * v;
      if (j >= K) continue;
      // On the diagonal tile both (i, j) and (j, i) are computed here; each thread writes its
      // own (i, j) only, and the mirror write below is skipped there.
      float* p = h + (size_t)i * K + j;
      const float val = beta * *p + alpha * acc[u][v];
      *p = val;
      if (bi != bj) h[(size_t)j * K + i] = val;
    }
  }
}

}  // namespace
}  // namespace gptq

using namespace gptq;

GPTQ_API int gptq_hessian_accumulate(uint64_t h, uint64_t x, int32_t rows, int32_t K, float alpha,
                                     float beta) {
  if (!ready("gptq_hessian_accumulate")) return GPTQ_E_NOT_INITIALIZED;
  if (!h || K <= 0 || rows < 0 || (rows > 0 && !x)) {
    return invalid("gptq_hessian_accumulate: bad argument (rows %d, K %d)", rows, K);
  }
  const int tiles = (K + HT - 1) / HT;
  if (tiles > 65535) return invalid("gptq_hessian_accumulate: K %d too large", K);
  GPU_LAUNCH(hessian_kernel, dim3(tiles, tiles), 256, stream(), dptr<float>(h),
             dptr<const float>(x), rows, K, alpha, beta);
  return launched("hessian_kernel");
}
