// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// GPTQ dequant-matmul: y[M, N] = x[M, K] · Wᵀ + bias with W packed (2, 3, 4, 8 bits), fp16
// scales and zero points per group, f32 accumulation. The design is the WebGPU backend's
// (wgsl/gptq_gemv.wgsl, wgsl/gptq_gemm.wgsl); the load-time layout is ExLlama's:
//
// - Act-order (g_idx not monotone) is resolved at load: the input rows are sorted by group
//   (stable), the packed weights repacked in that order on the device (gptq_gptq_repack), and
//   the permutation kept; at run time gptq_gather_cols gathers x's columns first.
// - qw [K/32 chunks][bits words][N] u32: for 2/4/8 bits word i of chunk c holds the codes of
//   rows 32c + i·(32/bits) + t at bit t·bits, GPTQ's own layout. 3 bits are repacked so that
//   no code straddles two words: two words of 2-bit low parts (16 rows each) and one word of
//   the 32 high bits.
// - sz [G, N] u32: f16 scale | f16 zero << 16 (the zero exact: an integer <= 256).
//
// GEMV (decode, M <= GPTQ_GPTQ_GEMV_MAX_ROWS): a thread owns 4 adjacent columns (one 16-byte
// load = one packed word of each), WY threads split the K chunks of those columns, and their
// partial sums are added in shared memory. Per 32-row chunk of one group it forms q − z
// exactly in f32 with the 2^23 trick (bits(2^23 + q) − (2^23 + z)), accumulates Σ x·(q − z)
// and multiplies by the scale once. A chunk that straddles a group boundary (group sizes that
// are not multiples of 32, or act-order groups of uneven size) takes a per-row slow path.
//
// GEMM (prefill): gemm.cuh with a loader that dequantizes a 32-row chunk of 64/128 columns
// into shared memory (consecutive threads read consecutive columns: coalesced words).
#include "gemm.cuh"

namespace gptq {
namespace {

constexpr uint32_t MAGIC = 0x4B000000u;  // 2^23 as f32 bits: OR a code < 2^23 in for 2^23 + q
constexpr float MAGICF = 8388608.f;

struct Groups {
  int gs;              // group size in sorted order, or 0: the group of row k is gtab[k]
  const int32_t* gtab;
  GPTQ_DI int of(int k) const { return gs ? k / gs : gtab[k]; }
};

GPTQ_DI void unpack_sz(uint32_t u, float& s, float& z) {
  s = gptq_h2f((uint16_t)(u & 0xffffu));
  z = gptq_h2f((uint16_t)(u >> 16));
}

/** The code of chunk-local row j (0..31) of chunk c, column n, in the repacked layout. */
template <int BITS>
GPTQ_DI uint32_t code_at(const uint32_t* __restrict__ qw, int N, int c, int j,
                                            int n) {
  if (BITS == 3) {
    const uint32_t lo = qw[((size_t)c * 3 + j / 16) * N + n];
    const uint32_t hi = qw[((size_t)c * 3 + 2) * N + n];
    return ((lo >> (2 * (j % 16))) & 3u) | (((hi >> j) & 1u) << 2);
  }
  constexpr int PER = 32 / BITS;
  const uint32_t w = qw[((size_t)c * BITS + j / PER) * N + n];
  return (w >> ((j % PER) * BITS)) & ((1u << BITS) - 1u);
}

/** Code t of a word (for 3 bits: t < 16 of low word i, with its high bit from hi). */
template <int BITS>
GPTQ_DI uint32_t code_of(uint32_t w, uint32_t hi, int i, int t) {
  if (BITS == 3) return ((w >> (2 * t)) & 3u) | (((hi >> (i * 16 + t)) & 1u) << 2);
  return (w >> (t * BITS)) & ((1u << BITS) - 1u);
}

GPTQ_DI float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

/** (2^23 + q) − zc for 4 columns: q − z exactly. */
template <int BITS>
GPTQ_DI float4 qminusz(uint4 w, uint4 hi, int i, int t, float4 zc) {
  return make_float4(__uint_as_float(code_of<BITS>(w.x, hi.x, i, t) | MAGIC) - zc.x,
                     __uint_as_float(code_of<BITS>(w.y, hi.y, i, t) | MAGIC) - zc.y,
                     __uint_as_float(code_of<BITS>(w.z, hi.z, i, t) | MAGIC) - zc.z,
                     __uint_as_float(code_of<BITS>(w.w, hi.w, i, t) | MAGIC) - zc.w);
}

GPTQ_DI void fma4(float s, float4 d, float4& acc) {
  acc.x = fmaf(s, d.x, acc.x);
  acc.y = fmaf(s, d.y, acc.y);
  acc.z = fmaf(s, d.z, acc.z);
  acc.w = fmaf(s, d.w, acc.w);
}

template <int BITS, int MR>
__global__ void __launch_bounds__(BLOCK)
    gptq_gemv_kernel(const float* __restrict__ x, int M, int K, int N,
                     const uint32_t* __restrict__ qw, const uint32_t* __restrict__ sz, Groups grp,
                     const float* __restrict__ bias, float* __restrict__ y, int WX, int WY) {
  constexpr int WPC = BITS == 3 ? 2 : BITS;        // words per chunk read in the main loop
  constexpr int CPW = BITS == 3 ? 16 : 32 / BITS;  // codes per such word
  __shared__ float4 red[BLOCK];
  const int tx = threadIdx.x % WX, ty = threadIdx.x / WX;
  const int NV = N / 4;
  const int col4 = blockIdx.x * WX + tx;
  const bool valid = col4 < NV;
  const uint4* qw4 = reinterpret_cast<const uint4*>(qw);
  const uint4* sz4 = reinterpret_cast<const uint4*>(sz);
  const int C = K / 32;
  float4 yv[MR];
#pragma unroll
  for (int m = 0; m < MR; m++) yv[m] = make_float4(0.f, 0.f, 0.f, 0.f);
  if (valid) {
    for (int c = ty; c < C; c += WY) {
      const int k0 = c * 32;
      int g;
      bool whole;  // all 32 rows of the chunk are in group g
      if (grp.gs) {
        g = k0 / grp.gs;
        whole = k0 + 32 <= (g + 1) * grp.gs;
      } else {
        g = grp.gtab[k0];
        whole = grp.gtab[k0 + 31] == g;  // sorted: first == last means one group
      }
      if (whole) {
        const uint4 p = sz4[(size_t)g * NV + col4];
        float4 s, zc;
        unpack_sz(p.x, s.x, zc.x);
        unpack_sz(p.y, s.y, zc.y);
        unpack_sz(p.z, s.z, zc.z);
        unpack_sz(p.w, s.w, zc.w);
        zc = zc + make_float4(MAGICF, MAGICF, MAGICF, MAGICF);
        float4 acc[MR];
#pragma unroll
        for (int m = 0; m < MR; m++) acc[m] = make_float4(0.f, 0.f, 0.f, 0.f);
        uint4 hi = make_uint4(0, 0, 0, 0);
        if (BITS == 3) hi = qw4[((size_t)c * 3 + 2) * NV + col4];
#pragma unroll
        for (int i = 0; i < WPC; i++) {
          const uint4 w = qw4[((size_t)c * BITS + i) * NV + col4];
#pragma unroll
          for (int t = 0; t < CPW; t += 4) {
            const float4 d0 = qminusz<BITS>(w, hi, i, t, zc);
            const float4 d1 = qminusz<BITS>(w, hi, i, t + 1, zc);
            const float4 d2 = qminusz<BITS>(w, hi, i, t + 2, zc);
            const float4 d3 = qminusz<BITS>(w, hi, i, t + 3, zc);
            const int k = k0 + i * CPW + t;
#pragma unroll
            for (int m = 0; m < MR; m++) {
              if (m < M) {
                const float4 xv = *reinterpret_cast<const float4*>(x + (size_t)m * K + k);
                fma4(xv.x, d0, acc[m]);
                fma4(xv.y, d1, acc[m]);
                fma4(xv.z, d2, acc[m]);
                fma4(xv.w, d3, acc[m]);
              }
            }
          }
        }
#pragma unroll
        for (int m = 0; m < MR; m++) {
          yv[m].x = fmaf(s.x, acc[m].x, yv[m].x);
          yv[m].y = fmaf(s.y, acc[m].y, yv[m].y);
          yv[m].z = fmaf(s.z, acc[m].z, yv[m].z);
          yv[m].w = fmaf(s.w, acc[m].w, yv[m].w);
        }
      } else {
        // A group boundary inside the chunk: the group of every row.
        for (int j = 0; j < 32; j++) {
          const int k = k0 + j;
          const uint4 p = sz4[(size_t)grp.of(k) * NV + col4];
          float s[4], z[4];
          unpack_sz(p.x, s[0], z[0]);
          unpack_sz(p.y, s[1], z[1]);
          unpack_sz(p.z, s[2], z[2]);
          unpack_sz(p.w, s[3], z[3]);
          float d[4];
#pragma unroll
          for (int e = 0; e < 4; e++) {
            d[e] = ((float)code_at<BITS>(qw, N, c, j, col4 * 4 + e) - z[e]) * s[e];
          }
#pragma unroll
          for (int m = 0; m < MR; m++) {
            if (m < M) {
              const float xv = x[(size_t)m * K + k];
              yv[m].x = fmaf(xv, d[0], yv[m].x);
              yv[m].y = fmaf(xv, d[1], yv[m].y);
              yv[m].z = fmaf(xv, d[2], yv[m].z);
              yv[m].w = fmaf(xv, d[3], yv[m].w);
            }
          }
        }
      }
    }
  }
  // Add the WY partial sums of each column group in shared memory, one row at a time.
#pragma unroll
  for (int m = 0; m < MR; m++) {
    red[threadIdx.x] = yv[m];
    __syncthreads();
    for (int s = WY / 2; s > 0; s >>= 1) {
      if (ty < s) red[threadIdx.x] = red[threadIdx.x] + red[threadIdx.x + s * WX];
      __syncthreads();
    }
    if (ty == 0 && valid && m < M) {
      const int n = col4 * 4;
      float4 r = red[tx];
      if (bias) r = r + make_float4(bias[n], bias[n + 1], bias[n + 2], bias[n + 3]);
      *reinterpret_cast<float4*>(y + (size_t)m * N + n) = r;
    }
    __syncthreads();
  }
}

/** gemm.cuh loader: dequantizes chunk k0/32 for columns n0.. (consecutive threads: columns). */
template <int BITS>
struct GptqLoader {
  const uint32_t* qw;
  const uint32_t* sz;
  Groups grp;
  template <int BN>
  GPTQ_DI void load(float (*Bs)[BN + 4], int n0, int k0, int N, int K,
                                       int tid) const {
    const int c = k0 / 32;
    for (int e = tid; e < BN * GEMM_BK; e += 256) {
      const int col = e % BN, j = e / BN, n = n0 + col;
      float v = 0.f;
      if (n < N) {
        float s, z;
        unpack_sz(sz[(size_t)grp.of(k0 + j) * N + n], s, z);
        v = ((float)code_at<BITS>(qw, N, c, j, n) - z) * s;
      }
      Bs[j][col] = v;
    }
  }
};

template <int BITS>
int gptq_linear(const float* x, int M, int K, int N, const uint32_t* qw, const uint32_t* sz,
                Groups grp, const float* bias, float* y) {
  if (M > GPTQ_GPTQ_GEMV_MAX_ROWS) {
    return launch_gemm("gptq gemm_kernel", x, M, K, N, GptqLoader<BITS>{qw, sz, grp}, bias, y);
  }
  // WY threads along K (enough chunks for each), WX = 256 / WY along N.
  const int C = K / 32;
  int WY = 4;
  while (WY < 64 && WY * 4 <= C) WY *= 2;
  const int WX = BLOCK / WY;
  const unsigned grid = (unsigned)((N / 4 + WX - 1) / WX);
#define GPTQ_GEMV(MR)                                                                         \
  GPU_LAUNCH((gptq_gemv_kernel<BITS, MR>), grid, BLOCK, stream(), x, M, K, N, qw, sz, grp, bias, \
             y, WX, WY)
  if (M == 1) GPTQ_GEMV(1);
  else if (M == 2) GPTQ_GEMV(2);
  else if (M <= 4) GPTQ_GEMV(4);
  else GPTQ_GEMV(8);
#undef GPTQ_GEMV
  return launched("gptq_gemv_kernel");
}

// One thread per (output word row r, column n) of the repacked layout.
__global__ void repack_kernel(const uint32_t* __restrict__ q, int K, int N, int bits,
                              const int32_t* __restrict__ perm, uint32_t* __restrict__ out) {
  const size_t total = (size_t)(K / 32) * bits * N;
  const uint32_t mask = (1u << bits) - 1u;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int n = (int)(idx % N);
    const int r = (int)(idx / N);
    const int c = r / bits, wi = r % bits;
    // The code of sorted row i: input row p = perm[i], read from GPTQ's layout.
    auto code = [&](int i) -> uint32_t {
      const int p = perm ? perm[i] : i;
      const size_t bit = (size_t)p * bits;
      const int sh = (int)(bit & 31);
      const size_t word = bit >> 5;
      uint32_t v = q[word * N + n] >> sh;
      if (sh + bits > 32) v |= q[(word + 1) * N + n] << (32 - sh);
      return v & mask;
    };
    uint32_t o = 0;
    if (bits == 3) {
      if (wi < 2) {
        for (int t = 0; t < 16; t++) o |= (code(c * 32 + wi * 16 + t) & 3u) << (2 * t);
      } else {
        for (int j = 0; j < 32; j++) o |= ((code(c * 32 + j) >> 2) & 1u) << j;
      }
    } else {
      const int per = 32 / bits;
      for (int t = 0; t < per; t++) o |= code(c * 32 + wi * per + t) << (t * bits);
    }
    out[idx] = o;
  }
}

__global__ void gather_cols_kernel(const float* __restrict__ x, int M, int K,
                                   const int32_t* __restrict__ perm, float* __restrict__ y) {
  const size_t n = (size_t)M * K;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n;
       idx += (size_t)gridDim.x * blockDim.x) {
    const size_t m = idx / K;
    const int i = (int)(idx % K);
    y[idx] = x[m * K + perm[i]];
  }
}

}  // namespace
}  // namespace gptq

using namespace gptq;

GPTQ_API int gptq_gptq_repack(uint64_t qweight, int32_t K, int32_t N, int32_t bits,
                              uint64_t perm, uint64_t out) {
  if (!ready("gptq_gptq_repack")) return GPTQ_E_NOT_INITIALIZED;
  if (!qweight || !out || K <= 0 || N <= 0 || K % 32 || N % 32 ||
      (bits != 2 && bits != 3 && bits != 4 && bits != 8)) {
    return invalid("gptq_gptq_repack: bad argument (K %d, N %d, bits %d)", K, N, bits);
  }
  const size_t total = (size_t)(K / 32) * bits * N;
  const unsigned grid = blocks_for(total, BLOCK) > 65536u ? 65536u : blocks_for(total, BLOCK);
  GPU_LAUNCH(repack_kernel, grid, BLOCK, stream(), dptr<const uint32_t>(qweight), K, N, bits,
             dptr<const int32_t>(perm), dptr<uint32_t>(out));
  return launched("repack_kernel");
}

GPTQ_API int gptq_gather_cols(uint64_t x, int32_t M, int32_t K, uint64_t perm, uint64_t y) {
  if (!ready("gptq_gather_cols")) return GPTQ_E_NOT_INITIALIZED;
  if (M <= 0) return 0;
  if (!x || !perm || !y || K <= 0) return invalid("gptq_gather_cols: bad argument");
  const size_t total = (size_t)M * K;
  const unsigned grid = blocks_for(total, BLOCK) > 65536u ? 65536u : blocks_for(total, BLOCK);
  GPU_LAUNCH(gather_cols_kernel, grid, BLOCK, stream(), dptr<const float>(x), M, K,
             dptr<const int32_t>(perm), dptr<float>(y));
  return launched("gather_cols_kernel");
}

GPTQ_API int gptq_gptq_linear(uint64_t x, int32_t M, int32_t K, int32_t N, int32_t bits,
                              uint64_t qw, uint64_t sz, int32_t gs, uint64_t gtab, uint64_t bias,
                              uint64_t y) {
  if (!ready("gptq_gptq_linear")) return GPTQ_E_NOT_INITIALIZED;
  if (M <= 0) return 0;
  if (!x || !qw || !sz || !y || K <= 0 || N <= 0 || K % 32 || N % 32 || gs < 0 ||
      (gs == 0 && !gtab) || (x & 15) || (y & 15) || (qw & 15) || (sz & 15)) {
    return invalid("gptq_gptq_linear: bad argument (K %d, N %d, gs %d; buffers 16-byte aligned?)",
                   K, N, gs);
  }
  const float* xp = dptr<const float>(x);
  const uint32_t* q = dptr<const uint32_t>(qw);
  const uint32_t* s = dptr<const uint32_t>(sz);
  const Groups g{gs, dptr<const int32_t>(gtab)};
  const float* b = dptr<const float>(bias);
  float* yp = dptr<float>(y);
  switch (bits) {
    case 2:
      return gptq_linear<2>(xp, M, K, N, q, s, g, b, yp);
    case 3:
      return gptq_linear<3>(xp, M, K, N, q, s, g, b, yp);
    case 4:
      return gptq_linear<4>(xp, M, K, N, q, s, g, b, yp);
    case 8:
      return gptq_linear<8>(xp, M, K, N, q, s, g, b, yp);
    default:
      return invalid("gptq_gptq_linear: bits must be 2, 3, 4 or 8, got %d", bits);
  }
}
