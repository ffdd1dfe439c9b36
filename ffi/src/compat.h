// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// One kernel source for three toolchains. The .cu files are written in CUDA's
// dialect; this header maps the few names that differ:
//
//   nvcc            (CUDA)      __CUDACC__ defined
//   hipcc           (HIP, AMD)  __HIP_PLATFORM_AMD__ / __HIPCC__ defined, built with -x hip
//   g++ + HIP-CPU   (tests)     GPTQ_HIP_CPU defined: HIP's API run on the CPU with fibers
//                               (ROCm/HIP-CPU, header-only), functional tests only
//
// Runtime calls are spelled gpu*(...) (gpuMalloc, gpuMemcpyAsync, ...) and map to cuda* or hip*.
// Kernel launches go through GPU_LAUNCH (HIP-CPU has no <<<>>> syntax).
//
// Warp size: never assumed to be 32. GPTQ_WARP is a compile-time constant per target: 32 on
// NVIDIA, the wavefront size the AMD compiler targets (64 on CDNA such as gfx90a, 32 on RDNA
// such as gfx1030), 64 under HIP-CPU. Kernels reduce across 32-lane groups with XOR shuffles of
// offsets < 32, which stay inside an aligned 32-lane group on any warp of 32 or 64 lanes, and
// across warps through shared memory.
#pragma once

#include <stdint.h>
#include <stddef.h>

#if defined(GPTQ_HIP_CPU)
// ---------------------------------------------------------------- HIP-CPU (tests only)
#include <hip/hip_runtime.h>
#define GPTQ_BACKEND_NAME "hip-cpu"
#define GPTQ_WARP 64
#define GPU_SHFL_XOR(v, m) __shfl_xor((v), (m))
#ifndef __launch_bounds__
#define __launch_bounds__(n)
#endif
#ifndef __restrict__
#define __restrict__
#endif
#include <algorithm>
#include <string.h>
using std::max;
using std::min;
inline float __uint_as_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#elif defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
// ---------------------------------------------------------------- HIP on AMD GPUs
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#define GPTQ_BACKEND_NAME "hip"
#if defined(__AMDGCN_WAVEFRONT_SIZE__)
#define GPTQ_WARP __AMDGCN_WAVEFRONT_SIZE__
#elif defined(__AMDGCN_WAVEFRONT_SIZE)
#define GPTQ_WARP __AMDGCN_WAVEFRONT_SIZE
#else
#define GPTQ_WARP 64  // host pass: the value is never used by host code
#endif
// ROCm 5.x has no *_sync shuffles; the mask-free ones act on the whole wavefront.
#define GPU_SHFL_XOR(v, m) __shfl_xor((v), (m))
#define GPTQ_HAVE_HW_HALF 1

#else
// ---------------------------------------------------------------- CUDA
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#define GPTQ_BACKEND_NAME "cuda"
#define GPTQ_WARP 32
#define GPU_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m))
#define GPTQ_HAVE_HW_HALF 1
#endif

#if defined(__CUDACC__) && !defined(__HIPCC__)
// ---------------------------------------------------------------- CUDA runtime names
#define gpuError_t cudaError_t
#define gpuSuccess cudaSuccess
#define gpuStream_t cudaStream_t
#define gpuEvent_t cudaEvent_t
#define gpuGetErrorString cudaGetErrorString
#define gpuGetErrorName cudaGetErrorName
#define gpuGetLastError cudaGetLastError
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuSetDevice cudaSetDevice
#define gpuDeviceProp cudaDeviceProp
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuDriverGetVersion cudaDriverGetVersion
#define gpuRuntimeGetVersion cudaRuntimeGetVersion
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuHostAlloc(p, n) cudaMallocHost((p), (n))
#define gpuHostFree cudaFreeHost
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuStreamCreateNonBlocking(s) cudaStreamCreateWithFlags((s), cudaStreamNonBlocking)
#define gpuStreamDestroy cudaStreamDestroy
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuEventCreateNoTiming(e) cudaEventCreateWithFlags((e), cudaEventDisableTiming)
#define gpuEventCreate cudaEventCreate
#define gpuEventRecord cudaEventRecord
#define gpuEventSynchronize cudaEventSynchronize
#define gpuEventElapsedTime cudaEventElapsedTime
#define gpuEventDestroy cudaEventDestroy
#define gpuMemGetInfo cudaMemGetInfo
#define gpuFuncAttributes cudaFuncAttributes
#define gpuFuncGetAttributes cudaFuncGetAttributes
#define gpuDeviceSynchronize cudaDeviceSynchronize
// Error codes the C ABI classifies (same numbers in CUDA and HIP).
#define gpuErrorInsufficientDriver cudaErrorInsufficientDriver
#define gpuErrorNoDevice cudaErrorNoDevice
#define gpuErrorNoKernelImage cudaErrorNoKernelImageForDevice
#define gpuErrorInvalidDeviceFunction cudaErrorInvalidDeviceFunction
#define gpuErrorMemoryAllocation cudaErrorMemoryAllocation
#define GPU_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#else
// ---------------------------------------------------------------- HIP runtime names
#define gpuError_t hipError_t
#define gpuSuccess hipSuccess
#define gpuStream_t hipStream_t
#define gpuEvent_t hipEvent_t
#define gpuGetErrorString hipGetErrorString
#define gpuGetErrorName hipGetErrorName
#define gpuGetLastError hipGetLastError
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuSetDevice hipSetDevice
#define gpuDeviceProp hipDeviceProp_t
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuDriverGetVersion hipDriverGetVersion
#define gpuRuntimeGetVersion hipRuntimeGetVersion
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuHostAlloc(p, n) hipHostMalloc((p), (n))
#define gpuHostFree hipHostFree
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuStreamCreateNonBlocking(s) hipStreamCreateWithFlags((s), hipStreamNonBlocking)
#define gpuStreamDestroy hipStreamDestroy
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuEventCreateNoTiming(e) hipEventCreateWithFlags((e), hipEventDisableTiming)
#define gpuEventCreate hipEventCreate
#define gpuEventRecord hipEventRecord
#define gpuEventSynchronize hipEventSynchronize
#define gpuEventElapsedTime hipEventElapsedTime
#define gpuEventDestroy hipEventDestroy
#define gpuMemGetInfo hipMemGetInfo
#define gpuFuncAttributes hipFuncAttributes
#define gpuFuncGetAttributes hipFuncGetAttributes
#define gpuDeviceSynchronize hipDeviceSynchronize
#define gpuErrorInsufficientDriver hipErrorInsufficientDriver
#define gpuErrorNoDevice hipErrorNoDevice
#define gpuErrorNoKernelImage hipErrorNoBinaryForGpu
#define gpuErrorInvalidDeviceFunction hipErrorInvalidDeviceFunction
#define gpuErrorMemoryAllocation hipErrorOutOfMemory
#define GPU_LAUNCH(kernel, grid, block, stream, ...) \
  hipLaunchKernelGGL(kernel, (grid), (block), 0, (stream), __VA_ARGS__)
#endif

// A device function inlined everywhere (HIP-CPU's __forceinline__ lacks `inline`).
#if defined(GPTQ_HIP_CPU)
#define GPTQ_DI __device__ inline
#else
#define GPTQ_DI __device__ __forceinline__
#endif

static_assert(GPTQ_WARP >= 32 && 256 % GPTQ_WARP == 0,
              "the kernels need a warp of 32 or 64 lanes dividing the 256-thread block");

// ------------------------------------------------------------------ f16 / bf16 → f32
// Hardware conversion where the toolchain has it; an exact bit-level one under HIP-CPU.
GPTQ_DI float gptq_h2f(uint16_t h) {
#if defined(GPTQ_HAVE_HW_HALF)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exp = 113u;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

GPTQ_DI float gptq_bf2f(uint16_t h) {
  return __uint_as_float((uint32_t)h << 16);
}
