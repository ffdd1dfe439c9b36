// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// The forward's kernels besides the matmuls: embedding gather, RMSNorm/LayerNorm, RoPE, the
// qkv split, attention, elementwise ops and the per-row reductions (argmax, NLL). Designs
// follow the WebGPU backend's WGSL kernels (wgsl/*.wgsl), which are tested on lavapipe
// against the TypeScript reference.
#include "common.cuh"

namespace gptq {
namespace {

GPTQ_DI float load_elem(const void* base, int dtype, size_t i) {
  if (dtype == GPTQ_DTYPE_F16) return gptq_h2f(static_cast<const uint16_t*>(base)[i]);
  if (dtype == GPTQ_DTYPE_BF16) return gptq_bf2f(static_cast<const uint16_t*>(base)[i]);
  return static_cast<const float*>(base)[i];
}

// One thread per output element, grid-stride.
__global__ void gather_kernel(const void* __restrict__ table, int dtype, int cols,
                              const int32_t* __restrict__ ids, int T, int offset,
                              float* __restrict__ y) {
  const size_t n = (size_t)T * cols;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const size_t t = i / cols, c = i % cols;
    const size_t row = (size_t)(ids[t] + offset);
    y[i] = load_elem(table, dtype, row * cols + c);
  }
}

// One block per row. layer = 0: RMSNorm; 1: LayerNorm (b may be null).
__global__ void __launch_bounds__(BLOCK)
    norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                const float* __restrict__ b, float* __restrict__ y, int H, float eps, int layer) {
  __shared__ float red[BLOCK / GPTQ_WARP];
  const float* xr = x + (size_t)blockIdx.x * H;
  float* yr = y + (size_t)blockIdx.x * H;
  if (!layer) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < H; i += BLOCK) ss = fmaf(xr[i], xr[i], ss);
    ss = block_sum(ss, red);
    const float r = 1.f / sqrtf(ss / (float)H + eps);
    // (x · r) rounded to f32, then · w: as HF's LlamaRMSNorm and the reference.
    for (int i = threadIdx.x; i < H; i += BLOCK) yr[i] = (xr[i] * r) * w[i];
    return;
  }
  float s = 0.f;
  for (int i = threadIdx.x; i < H; i += BLOCK) s += xr[i];
  const float mean = block_sum(s, red) / (float)H;
  float v = 0.f;
  for (int i = threadIdx.x; i < H; i += BLOCK) {
    const float d = xr[i] - mean;
    v = fmaf(d, d, v);
  }
  const float r = 1.f / sqrtf(block_sum(v, red) / (float)H + eps);
  for (int i = threadIdx.x; i < H; i += BLOCK) {
    yr[i] = (xr[i] - mean) * r * w[i] + (b ? b[i] : 0.f);
  }
}

// One thread per (token, head, pair i < half): rotates (i, i + half).
__global__ void rope_kernel(float* __restrict__ x, int T, int heads, int D, int half, int past,
                            const float* __restrict__ inv_freq) {
  const size_t n = (size_t)T * heads * half;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int i = (int)(idx % half);
    const size_t th = idx / half;  // t · heads + h
    const int t = (int)(th / heads);
    // The angle in f32 (pos · inv_freq rounded once), then accurate sin/cos (no fast math).
    const float ang = (float)(past + t) * inv_freq[i];
    float s, c;
    sincosf(ang, &s, &c);
    float* p = x + th * D;
    const float a = p[i], bb = p[i + half];
    p[i] = a * c - bb * s;
    p[i + half] = bb * c + a * s;
  }
}

__global__ void split_qkv_kernel(const float* __restrict__ x, int T, int heads, int D,
                                 int per_head, float* __restrict__ q, float* __restrict__ k,
                                 float* __restrict__ v) {
  const int HD = heads * D;
  const size_t n = (size_t)T * HD;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < n;
       idx += (size_t)gridDim.x * blockDim.x) {
    const size_t t = idx / HD;
    const int c = (int)(idx % HD);
    const float* row = x + t * 3 * HD;
    if (per_head) {
      const int h = c / D, d = c % D, o = h * 3 * D + d;
      q[idx] = row[o];
      k[idx] = row[o + D];
      v[idx] = row[o + 2 * D];
    } else {
      q[idx] = row[c];
      k[idx] = row[HD + c];
      v[idx] = row[2 * HD + c];
    }
  }
}

// ------------------------------------------------------------------ attention
constexpr int AW = 64;  // keys per block step = threads per block
constexpr float NEG = -3.0e38f;  // "minus infinity" that keeps exp(NEG − NEG) finite

// One block of AW threads per (key split s, query head h, new token t) (grid x, y, z). It walks
// the keys [s·chunk, min(past + t + 1, (s+1)·chunk)) in steps of AW, one key per thread for the
// score, keeps the running max m and sum l (online softmax), and each thread accumulates the
// output dims d = tid + AW·i. With nsplit = 1 it writes the normalized output; otherwise the
// split's (m, l, acc[D]) into part for attention_combine.
__global__ void __launch_bounds__(AW)
    attention_kernel(const float* __restrict__ q, const float* __restrict__ kc,
                     const float* __restrict__ vc, float* __restrict__ out, int Hq, int Hkv, int D,
                     int past, int chunk, int nsplit, float scale) {
  __shared__ float qs[GPTQ_MAX_HEAD_DIM];
  __shared__ float sc[AW];
  __shared__ float pr[AW];
  const int s = blockIdx.x, h = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
  const int ldq = Hq * D, ldkv = Hkv * D;
  const int koff = (h / (Hq / Hkv)) * D;
  for (int d = tid; d < D; d += AW) qs[d] = q[(size_t)t * ldq + h * D + d] * scale;
  __syncthreads();
  const int len = past + t + 1;
  const int beg = s * chunk;
  const int end = min(len, beg + chunk);
  float m = NEG, l = 0.f;
  float acc[GPTQ_MAX_HEAD_DIM / AW];
#pragma unroll
  for (int i = 0; i < GPTQ_MAX_HEAD_DIM / AW; i++) acc[i] = 0.f;
  for (int kb = beg; kb < end; kb += AW) {
    const int key = kb + tid;
    float score = NEG;
    if (key < end) {
      const float* kr = kc + (size_t)key * ldkv + koff;
      float sum = 0.f;
      for (int i = 0; i < D; i++) sum = fmaf(qs[i], kr[i], sum);
      score = sum;
    }
    sc[tid] = score;
    __syncthreads();
    const int nb = min(AW, end - kb);
    float bmax = m;
    for (int j = 0; j < nb; j++) bmax = fmaxf(bmax, sc[j]);
    pr[tid] = expf(score - bmax);
    __syncthreads();
    const float corr = expf(m - bmax);
    float psum = 0.f;
    for (int j = 0; j < nb; j++) psum += pr[j];
    l = l * corr + psum;
#pragma unroll
    for (int i = 0; i < GPTQ_MAX_HEAD_DIM / AW; i++) {
      const int d = tid + AW * i;
      if (d < D) {
        float a = acc[i] * corr;
        const float* vr = vc + (size_t)kb * ldkv + koff + d;
        for (int j = 0; j < nb; j++) a = fmaf(pr[j], vr[(size_t)j * ldkv], a);
        acc[i] = a;
      }
    }
    m = bmax;
    __syncthreads();
  }
  if (nsplit == 1) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int i = 0; i < GPTQ_MAX_HEAD_DIM / AW; i++) {
      const int d = tid + AW * i;
      if (d < D) out[(size_t)t * ldq + h * D + d] = acc[i] * inv;
    }
  } else {
    float* pb = out + (((size_t)t * Hq + h) * nsplit + s) * (D + 2);
    if (tid == 0) {
      pb[0] = m;
      pb[1] = l;
    }
#pragma unroll
    for (int i = 0; i < GPTQ_MAX_HEAD_DIM / AW; i++) {
      const int d = tid + AW * i;
      if (d < D) pb[2 + d] = acc[i];
    }
  }
}

// Merges the splits of one (head, token): out = Σ acc_s·e^(m_s − M) / Σ l_s·e^(m_s − M).
__global__ void __launch_bounds__(AW)
    attention_combine_kernel(const float* __restrict__ part, float* __restrict__ out, int Hq,
                             int D, int nsplit) {
  const int h = blockIdx.x, t = blockIdx.y;
  const float* pb = part + ((size_t)t * Hq + h) * nsplit * (D + 2);
  float M = NEG;
  for (int s = 0; s < nsplit; s++) M = fmaxf(M, pb[(size_t)s * (D + 2)]);
  float L = 0.f;
  for (int s = 0; s < nsplit; s++) {
    L += pb[(size_t)s * (D + 2) + 1] * expf(pb[(size_t)s * (D + 2)] - M);
  }
  const float inv = L > 0.f ? 1.f / L : 0.f;
  for (int d = threadIdx.x; d < D; d += AW) {
    float a = 0.f;
    for (int s = 0; s < nsplit; s++) {
      const float* p = pb + (size_t)s * (D + 2);
      a = fmaf(p[2 + d], expf(p[0] - M), a);
    }
    out[(size_t)t * Hq * D + h * D + d] = a * inv;
  }
}

// ------------------------------------------------------------------ elementwise
GPTQ_DI float act_fn(float x, int act) {
  switch (act) {
    case GPTQ_ACT_SILU:
      return x / (1.f + expf(-x));
    case GPTQ_ACT_RELU:
      return x > 0.f ? x : 0.f;
    case GPTQ_ACT_GELU_TANH:
      return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    default:  // GPTQ_ACT_GELU
      return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
  }
}

// op 0: a += b; 1: a = act(a); 2: a = act(a) · b.
__global__ void elementwise_kernel(float* __restrict__ a, const float* __restrict__ b, uint64_t n,
                                   int op, int act) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    if (op == 0) a[i] += b[i];
    else if (op == 1) a[i] = act_fn(a[i], act);
    else a[i] = act_fn(a[i], act) * b[i];
  }
}

// ------------------------------------------------------------------ row reductions
// (v2, i2) beats (v1, i1): larger, or equal and earlier (first index on ties).
GPTQ_DI bool beats(float v1, int i1, float v2, int i2) {
  return i2 >= 0 && (i1 < 0 || v2 > v1 || (v2 == v1 && i2 < i1));
}

__global__ void __launch_bounds__(BLOCK)
    argmax_kernel(const float* __restrict__ x, int cols, int32_t* __restrict__ out) {
  __shared__ float rv[BLOCK];
  __shared__ int ri[BLOCK];
  const float* xr = x + (size_t)blockIdx.x * cols;
  float bv = 0.f;
  int bi = -1;
  for (int c = threadIdx.x; c < cols; c += BLOCK) {
    const float v = xr[c];
    if (bi < 0 || v > bv) {
      bv = v;
      bi = c;
    }
  }
  rv[threadIdx.x] = bv;
  ri[threadIdx.x] = bi;
  __syncthreads();
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s && beats(rv[threadIdx.x], ri[threadIdx.x], rv[threadIdx.x + s],
                                      ri[threadIdx.x + s])) {
      rv[threadIdx.x] = rv[threadIdx.x + s];
      ri[threadIdx.x] = ri[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = ri[0] < 0 ? 0 : ri[0];
}

__global__ void __launch_bounds__(BLOCK)
    row_nll_kernel(const float* __restrict__ x, int cols, const int32_t* __restrict__ targets,
                   float* __restrict__ out) {
  __shared__ float red[BLOCK / GPTQ_WARP];
  const float* xr = x + (size_t)blockIdx.x * cols;
  float mx = NEG;
  for (int c = threadIdx.x; c < cols; c += BLOCK) mx = fmaxf(mx, xr[c]);
  mx = block_max(mx, red);
  float s = 0.f;
  for (int c = threadIdx.x; c < cols; c += BLOCK) s += expf(xr[c] - mx);
  s = block_sum(s, red);
  if (threadIdx.x == 0) out[blockIdx.x] = logf(s) + mx - xr[targets[blockIdx.x]];
}

unsigned grid_for(uint64_t n) {
  // Enough blocks to fill any GPU, grid-stride loops do the rest.
  return blocks_for(n, BLOCK) > 65536u ? 65536u : blocks_for(n, BLOCK);
}

}  // namespace
}  // namespace gptq

using namespace gptq;

GPTQ_API int gptq_gather(uint64_t table, int32_t dtype, int32_t cols, uint64_t ids, int32_t T,
                         int32_t offset, uint64_t y) {
  if (!ready("gptq_gather")) return GPTQ_E_NOT_INITIALIZED;
  if (T <= 0 || cols <= 0) return 0;
  if (!table || !ids || !y || dtype < 0 || dtype > 2) return invalid("gptq_gather: bad argument");
  GPU_LAUNCH(gather_kernel, grid_for((uint64_t)T * cols), BLOCK, stream(), dptr<const void>(table),
             dtype, cols, dptr<const int32_t>(ids), T, offset, dptr<float>(y));
  return launched("gather_kernel");
}

GPTQ_API int gptq_rms_norm(uint64_t x, uint64_t w, uint64_t y, int32_t M, int32_t H, float eps) {
  if (!ready("gptq_rms_norm")) return GPTQ_E_NOT_INITIALIZED;
  if (M <= 0) return 0;
  if (!x || !w || !y || H <= 0) return invalid("gptq_rms_norm: bad argument");
  GPU_LAUNCH(norm_kernel, (unsigned)M, BLOCK, stream(), dptr<const float>(x), dptr<const float>(w),
             (const float*)nullptr, dptr<float>(y), H, eps, 0);
  return launched("norm_kernel (rms)");
}

GPTQ_API int gptq_layer_norm(uint64_t x, uint64_t w, uint64_t b, uint64_t y, int32_t M,
                             int32_t H, float eps) {
  if (!ready("gptq_layer_norm")) return GPTQ_E_NOT_INITIALIZED;
  if (M <= 0) return 0;
  if (!x || !w || !y || H <= 0) return invalid("gptq_layer_norm: bad argument");
  GPU_LAUNCH(norm_kernel, (unsigned)M, BLOCK, stream(), dptr<const float>(x), dptr<const float>(w),
             dptr<const float>(b), dptr<float>(y), H, eps, 1);
  return launched("norm_kernel (layer)");
}

GPTQ_API int gptq_rope(uint64_t x, int32_t T, int32_t heads, int32_t head_dim,
                       int32_t rotary_dim, int32_t past, uint64_t inv_freq) {
  if (!ready("gptq_rope")) return GPTQ_E_NOT_INITIALIZED;
  const int half = rotary_dim / 2;
  if (T <= 0 || half <= 0) return 0;
  if (!x || !inv_freq || heads <= 0 || rotary_dim > head_dim || rotary_dim % 2) {
    return invalid("gptq_rope: bad argument (rotary_dim %d, head_dim %d)", rotary_dim, head_dim);
  }
  GPU_LAUNCH(rope_kernel, grid_for((uint64_t)T * heads * half), BLOCK, stream(), dptr<float>(x), T,
             heads, head_dim, half, past, dptr<const float>(inv_freq));
  return launched("rope_kernel");
}

GPTQ_API int gptq_split_qkv(uint64_t x, int32_t T, int32_t heads, int32_t D, int32_t per_head,
                            uint64_t q, uint64_t k, uint64_t v) {
  if (!ready("gptq_split_qkv")) return GPTQ_E_NOT_INITIALIZED;
  if (T <= 0) return 0;
  if (!x || !q || !k || !v || heads <= 0 || D <= 0) return invalid("gptq_split_qkv: bad argument");
  GPU_LAUNCH(split_qkv_kernel, grid_for((uint64_t)T * heads * D), BLOCK, stream(),
             dptr<const float>(x), T, heads, D, per_head, dptr<float>(q), dptr<float>(k),
             dptr<float>(v));
  return launched("split_qkv_kernel");
}

GPTQ_API uint64_t gptq_attention_scratch_bytes(int32_t T, int32_t Hq, int32_t D, int32_t splits) {
  if (T <= 0 || Hq <= 0 || D <= 0 || splits <= 1) return 0;
  return (uint64_t)T * Hq * splits * (D + 2) * 4;
}

GPTQ_API int gptq_attention(uint64_t q, uint64_t k_cache, uint64_t v_cache, uint64_t out,
                            int32_t T, int32_t Hq, int32_t Hkv, int32_t D, int32_t past,
                            int32_t splits, int32_t chunk, uint64_t scratch) {
  if (!ready("gptq_attention")) return GPTQ_E_NOT_INITIALIZED;
  if (T <= 0) return 0;
  if (!q || !k_cache || !v_cache || !out || D <= 0 || D > GPTQ_MAX_HEAD_DIM || Hkv <= 0 ||
      Hq % Hkv != 0 || splits < 1 || chunk < 1 || (long long)splits * chunk < past + T ||
      (splits > 1 && !scratch) || T > 65535 || Hq > 65535) {
    return invalid("gptq_attention: bad argument (T %d, Hq %d, Hkv %d, D %d, splits %d, chunk %d)",
                   T, Hq, Hkv, D, splits, chunk);
  }
  const float scale = 1.f / sqrtf((float)D);
  float* dst = splits == 1 ? dptr<float>(out) : dptr<float>(scratch);
  GPU_LAUNCH(attention_kernel, dim3(splits, Hq, T), AW, stream(), dptr<const float>(q),
             dptr<const float>(k_cache), dptr<const float>(v_cache), dst, Hq, Hkv, D, past, chunk,
             splits, scale);
  int s = launched("attention_kernel");
  if (s || splits == 1) return s;
  GPU_LAUNCH(attention_combine_kernel, dim3(Hq, T), AW, stream(), dptr<const float>(scratch),
             dptr<float>(out), Hq, D, splits);
  return launched("attention_combine_kernel");
}

static int elementwise(const char* what, uint64_t a, uint64_t b, uint64_t n, int op, int act) {
  if (!ready(what)) return GPTQ_E_NOT_INITIALIZED;
  if (n == 0) return 0;
  if (!a || (op != 1 && !b) || act < 0 || act > 3) return invalid("%s: bad argument", what);
  GPU_LAUNCH(elementwise_kernel, grid_for(n), BLOCK, stream(), dptr<float>(a),
             dptr<const float>(b), n, op, act);
  return launched(what);
}

GPTQ_API int gptq_add(uint64_t a, uint64_t b, uint64_t n) {
  return elementwise("gptq_add", a, b, n, 0, 0);
}

GPTQ_API int gptq_activate(uint64_t x, uint64_t n, int32_t act) {
  return elementwise("gptq_activate", x, 0, n, 1, act);
}

GPTQ_API int gptq_gated_activate(uint64_t gate, uint64_t up, uint64_t n, int32_t act) {
  return elementwise("gptq_gated_activate", gate, up, n, 2, act);
}

GPTQ_API int gptq_argmax_rows(uint64_t x, int32_t rows, int32_t cols, uint64_t out) {
  if (!ready("gptq_argmax_rows")) return GPTQ_E_NOT_INITIALIZED;
  if (rows <= 0) return 0;
  if (!x || !out || cols <= 0) return invalid("gptq_argmax_rows: bad argument");
  GPU_LAUNCH(argmax_kernel, (unsigned)rows, BLOCK, stream(), dptr<const float>(x), cols,
             dptr<int32_t>(out));
  return launched("argmax_kernel");
}

GPTQ_API int gptq_row_nll(uint64_t x, int32_t rows, int32_t cols, uint64_t targets,
                          uint64_t out) {
  if (!ready("gptq_row_nll")) return GPTQ_E_NOT_INITIALIZED;
  if (rows <= 0) return 0;
  if (!x || !out || !targets || cols <= 0) return invalid("gptq_row_nll: bad argument");
  GPU_LAUNCH(row_nll_kernel, (unsigned)rows, BLOCK, stream(), dptr<const float>(x), cols,
             dptr<const int32_t>(targets), dptr<float>(out));
  return launched("row_nll_kernel");
}
