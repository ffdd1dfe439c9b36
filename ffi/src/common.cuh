// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// Shared by every .cu file: the library's stream, status/error helpers and the block
// reductions. Device pointers arrive as uint64_t and are cast with dptr<T>().
#pragma once

#include <string.h>

#include "compat.h"
#include "../include/gptq_ffi.h"

namespace gptq {

/** Threads of every 1-D block (a multiple of GPTQ_WARP on all targets). */
constexpr int BLOCK = 256;

/** Records the message of a failing call (process-wide, see gptq_last_error). */
void set_error(const char* fmt, ...);

/** The stream of gptq_init, or null before it. */
gpuStream_t stream();

/** Whether gptq_init ran; sets GPTQ_E_NOT_INITIALIZED's message when not. */
bool ready(const char* what);

/** A runtime status as the ABI's int, recording the message when it failed. */
int check(gpuError_t e, const char* what);

/** After a launch: the launch error (bad configuration, missing kernel image), if any. */
inline int launched(const char* what) { return check(gpuGetLastError(), what); }

/** GPTQ_E_INVALID with a message. */
int invalid(const char* fmt, ...);

template <typename T>
inline T* dptr(uint64_t p) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(p));
}

/** Blocks of `per` items each covering n items (at least 1). */
inline unsigned blocks_for(uint64_t n, unsigned per) {
  uint64_t b = (n + per - 1) / per;
  return b == 0 ? 1u : (unsigned)(b > 0x7fffffffu ? 0x7fffffffu : b);
}

// ------------------------------------------------------------------ reductions (device)

/** Sum over an aligned group of 32 lanes (XOR offsets < 32 stay inside it on 32/64 warps). */
GPTQ_DI float group32_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += GPU_SHFL_XOR(v, o);
  return v;
}

/** Sum over a whole warp of GPTQ_WARP lanes. */
GPTQ_DI float warp_sum(float v) {
#pragma unroll
  for (int o = GPTQ_WARP / 2; o > 0; o >>= 1) v += GPU_SHFL_XOR(v, o);
  return v;
}

GPTQ_DI float warp_max(float v) {
#pragma unroll
  for (int o = GPTQ_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, GPU_SHFL_XOR(v, o));
  return v;
}

/**
 * Sum over a block of BLOCK threads; every thread gets the result (same order everywhere, so
 * the result is deterministic). `red` is shared memory of at least BLOCK / GPTQ_WARP floats;
 * the trailing barrier lets the caller reuse it at once.
 */
GPTQ_DI float block_sum(float v, float* red) {
  const int lane = threadIdx.x % GPTQ_WARP, warp = threadIdx.x / GPTQ_WARP;
  v = warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int i = 0; i < BLOCK / GPTQ_WARP; i++) r += red[i];
  __syncthreads();
  return r;
}

/** Maximum over a block of BLOCK threads (as block_sum). */
GPTQ_DI float block_max(float v, float* red) {
  const int lane = threadIdx.x % GPTQ_WARP, warp = threadIdx.x / GPTQ_WARP;
  v = warp_max(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = red[0];
  for (int i = 1; i < BLOCK / GPTQ_WARP; i++) r = fmaxf(r, red[i]);
  __syncthreads();
  return r;
}

}  // namespace gptq
