/* Copyright 2026 the GPTQ toolkit authors. MIT license.
 *
 * The C ABI of the CUDA/HIP kernels (libgptq_cuda.so, libgptq_hip.so), loaded by
 * src/backends/cuda/ffi.ts with Deno.dlopen.
 *
 * Conventions
 * - Every entry point returns an int status: 0 is success, a positive value is the CUDA/HIP
 *   error code (cudaError_t / hipError_t), a negative value one of GPTQ_E_* below. After a
 *   failure gptq_last_error() returns a message naming the call (a process-wide buffer,
 *   valid until the next failing call); gptq_status_kind() classifies a status.
 * - Device pointers travel as uint64_t. They come from gptq_malloc (or any cudaMalloc'ed
 *   memory of the same device); 0 means "none" where a parameter is optional (bias, ...).
 * - Host pointers (const void*, void*, int32_t*) are only read or written during the call:
 *   the caller may free or reuse them when it returns. The one exception is the read ticket
 *   (gptq_read_begin → gptq_read_wait → gptq_read_end), which owns its own pinned staging
 *   memory until gptq_read_end.
 * - After gptq_init, every kernel and copy is enqueued on one stream of the chosen device and
 *   returns at once (launch errors are reported, execution errors surface at the next sync:
 *   gptq_sync, gptq_read_wait, gptq_memcpy_d2h). Stream order makes it safe to free or reuse a
 *   buffer as soon as the calls that use it are enqueued.
 * - Activations are f32, row-major. Linear weights are [N, K] (nn.Linear.weight) with a row
 *   stride ldw >= K in elements. Tables and dense weights may be f32, f16 or bf16
 *   (GPTQ_DTYPE_*).
 * - One device per process (the last gptq_init wins); the calls are thread-safe as far as the
 *   CUDA runtime is, and the library serialises nothing itself.
 */
#ifndef GPTQ_FFI_H
#define GPTQ_FFI_H

#include <stdint.h>

#ifdef __cplusplus
#define GPTQ_EXTERN extern "C"
#else
#define GPTQ_EXTERN
#endif
#define GPTQ_API GPTQ_EXTERN __attribute__((visibility("default")))

/** ABI version: bumped whenever a signature below changes (ffi.ts checks it). */
#define GPTQ_ABI_VERSION 2

/* Toolkit status codes (negative; positive codes are the runtime's). */
#define GPTQ_E_INVALID (-1)         /* a bad argument (shape, null pointer, unsupported value) */
#define GPTQ_E_NOT_INITIALIZED (-2) /* a kernel call before gptq_init */
#define GPTQ_E_UNSUPPORTED (-3)     /* a shape or option the kernels do not implement */

/* gptq_status_kind() results. */
#define GPTQ_KIND_OK 0
#define GPTQ_KIND_NO_DRIVER 1       /* cudaErrorInsufficientDriver (35): no or too old a driver */
#define GPTQ_KIND_NO_DEVICE 2       /* cudaErrorNoDevice (100) */
#define GPTQ_KIND_NO_KERNEL_IMAGE 3 /* cudaErrorNoKernelImageForDevice (209) / invalid device function */
#define GPTQ_KIND_OUT_OF_MEMORY 4
#define GPTQ_KIND_INVALID 5 /* GPTQ_E_INVALID, GPTQ_E_UNSUPPORTED, GPTQ_E_NOT_INITIALIZED */
#define GPTQ_KIND_OTHER 6

/* Element types of tables and dense weights. */
#define GPTQ_DTYPE_F32 0
#define GPTQ_DTYPE_F16 1
#define GPTQ_DTYPE_BF16 2

/* Activation codes (Hugging Face names). */
#define GPTQ_ACT_SILU 0
#define GPTQ_ACT_RELU 1
#define GPTQ_ACT_GELU_TANH 2 /* gelu_new, gelu_pytorch_tanh */
#define GPTQ_ACT_GELU 3      /* erf form */

/* Row thresholds: at most this many rows take the GEMV kernels, more the tiled GEMMs. */
#define GPTQ_DENSE_GEMV_MAX_ROWS 4
#define GPTQ_GPTQ_GEMV_MAX_ROWS 8
/* Largest head size of gptq_attention. */
#define GPTQ_MAX_HEAD_DIM 256

/* ------------------------------------------------------------------ errors and versions */
/** The message of the last failing call ("" when none failed yet). */
GPTQ_API const char* gptq_last_error(void);
/** Classifies a status as one of GPTQ_KIND_*. */
GPTQ_API int gptq_status_kind(int status);
/** GPTQ_ABI_VERSION of the library. */
GPTQ_API int gptq_abi_version(void);
/** "cuda", "hip" or "hip-cpu" (the toolchain the library was built with). */
GPTQ_API const char* gptq_backend_name(void);

/* ------------------------------------------------------------------ devices */
/** Number of devices; fails with 35 (no driver) or 100 (no device) before any init. */
GPTQ_API int gptq_device_count(int32_t* count);
/** Driver and runtime versions (e.g. 13000 for 13.0); driver is 0 when none is installed. */
GPTQ_API int gptq_versions(int32_t* driver, int32_t* runtime);
/**
 * Facts of device dev: its name and architecture ("sm_90", "gfx90a") as NUL-terminated
 * strings cut to the buffer sizes, total memory, compute capability and multiprocessors.
 */
GPTQ_API int gptq_device_info(int32_t dev, char* name, int32_t name_len, char* arch,
                              int32_t arch_len, uint64_t* total_bytes, int32_t* major,
                              int32_t* minor, int32_t* multiprocessors);
/** Whether the library has code for device dev (GPTQ_KIND_NO_KERNEL_IMAGE when not). */
GPTQ_API int gptq_check_kernel_image(int32_t dev);
/** Selects device dev and creates the library's stream (idempotent for the same dev). */
GPTQ_API int gptq_init(int32_t dev);
/** Waits for the stream and destroys it; later kernel calls need gptq_init again. */
GPTQ_API int gptq_shutdown(void);
/** Free and total device memory in bytes. */
GPTQ_API int gptq_mem_info(uint64_t* free_bytes, uint64_t* total_bytes);

/* ------------------------------------------------------------------ memory */
/** Allocates bytes (> 0) of device memory, 256-byte aligned. Synchronous. */
GPTQ_API int gptq_malloc(uint64_t bytes, uint64_t* out);
/** Frees device memory from gptq_malloc (waits for the device, as cudaFree does). */
GPTQ_API int gptq_free(uint64_t ptr);
/** Copies host → device on the stream; src may be reused when the call returns. */
GPTQ_API int gptq_memcpy_h2d(uint64_t dst, const void* src, uint64_t bytes);
/** Copies device → host after everything enqueued before it (blocks the caller). */
GPTQ_API int gptq_memcpy_d2h(void* dst, uint64_t src, uint64_t bytes);
/** Copies device → device on the stream. */
GPTQ_API int gptq_memcpy_d2d(uint64_t dst, uint64_t src, uint64_t bytes);
/** Sets bytes to the byte value on the stream. */
GPTQ_API int gptq_memset(uint64_t dst, int32_t value, uint64_t bytes);
/** Waits for everything enqueued so far. */
GPTQ_API int gptq_sync(void);
/**
 * Starts an asynchronous read: enqueues a copy of bytes from src into pinned staging memory
 * and an event after it, and returns a ticket at once. The caller must pass the ticket to
 * gptq_read_end exactly once (after gptq_read_wait, or directly: read_end waits too).
 */
GPTQ_API int gptq_read_begin(uint64_t src, uint64_t bytes, uint64_t* ticket);
/** Blocks until the ticket's copy is done (call it off the main thread: it may take long). */
GPTQ_API int gptq_read_wait(uint64_t ticket);
/** Copies the staged bytes into dst (may be null to drop them) and frees the ticket. */
GPTQ_API int gptq_read_end(uint64_t ticket, void* dst, uint64_t bytes);
/** Events for timing on the stream (bench). */
GPTQ_API int gptq_event_create(uint64_t* event);
GPTQ_API int gptq_event_record(uint64_t event);
GPTQ_API int gptq_event_elapsed(uint64_t start, uint64_t end, float* ms);
GPTQ_API int gptq_event_destroy(uint64_t event);

/* ------------------------------------------------------------------ the forward's kernels */
/** y[t, :] = f32(table[ids[t] + offset, :]) for t < T; ids is a device int32 [T]. */
GPTQ_API int gptq_gather(uint64_t table, int32_t dtype, int32_t cols, uint64_t ids, int32_t T,
                         int32_t offset, uint64_t y);
/** y = x / sqrt(mean(x²) + eps) · w per row; x, y [M, H], w [H]. */
GPTQ_API int gptq_rms_norm(uint64_t x, uint64_t w, uint64_t y, int32_t M, int32_t H, float eps);
/** y = (x − mean) / sqrt(var + eps) · w + b per row (biased variance); b may be 0. */
GPTQ_API int gptq_layer_norm(uint64_t x, uint64_t w, uint64_t b, uint64_t y, int32_t M,
                             int32_t H, float eps);
/**
 * Rotary embedding (rotate_half) in place on x [T, heads·head_dim]: the first rotary_dim dims
 * of each head at positions past .. past+T-1; inv_freq is [rotary_dim/2] f32.
 */
GPTQ_API int gptq_rope(uint64_t x, int32_t T, int32_t heads, int32_t head_dim,
                       int32_t rotary_dim, int32_t past, uint64_t inv_freq);
/** Splits x [T, 3·H·D] into q, k, v [T, H·D]: per_head 0 = [q | k | v], 1 = [q_h | k_h | v_h]. */
GPTQ_API int gptq_split_qkv(uint64_t x, int32_t T, int32_t heads, int32_t D, int32_t per_head,
                            uint64_t q, uint64_t k, uint64_t v);
/** Bytes of scratch gptq_attention needs for splits > 1. */
GPTQ_API uint64_t gptq_attention_scratch_bytes(int32_t T, int32_t Hq, int32_t D, int32_t splits);
/**
 * Causal attention with grouped KV heads and an online softmax: q [T, Hq·D] over caches
 * [>= past+T, Hkv·D] into out [T, Hq·D]. The keys are cut into splits chunks of chunk keys
 * (a multiple of 64), computed by separate blocks and merged; splits > 1 needs scratch of
 * gptq_attention_scratch_bytes. D <= GPTQ_MAX_HEAD_DIM, Hq a multiple of Hkv.
 */
GPTQ_API int gptq_attention(uint64_t q, uint64_t k_cache, uint64_t v_cache, uint64_t out,
                            int32_t T, int32_t Hq, int32_t Hkv, int32_t D, int32_t past,
                            int32_t splits, int32_t chunk, uint64_t scratch);
/** a += b over n f32. */
GPTQ_API int gptq_add(uint64_t a, uint64_t b, uint64_t n);
/** x = act(x) over n f32 (GPTQ_ACT_*). */
GPTQ_API int gptq_activate(uint64_t x, uint64_t n, int32_t act);
/** gate = act(gate) · up over n f32. */
GPTQ_API int gptq_gated_activate(uint64_t gate, uint64_t up, uint64_t n, int32_t act);
/** out[r] = index of the maximum of row r of x [rows, cols] (first on ties), int32. */
GPTQ_API int gptq_argmax_rows(uint64_t x, int32_t rows, int32_t cols, uint64_t out);
/** out[r] = logsumexp(x[r]) − x[r, targets[r]] (f32) for r < rows; targets is device int32. */
GPTQ_API int gptq_row_nll(uint64_t x, int32_t rows, int32_t cols, uint64_t targets,
                          uint64_t out);
/**
 * y[M, N] = x[M, K] · Wᵀ + bias with W [N, ldw] in dtype (ldw >= K, a multiple of 8, rows
 * 16-byte aligned); bias [N] f32 or 0. GEMV up to GPTQ_DENSE_GEMV_MAX_ROWS rows, tiled GEMM
 * above.
 */
GPTQ_API int gptq_dense_linear(uint64_t x, int32_t M, int32_t K, uint64_t w, int32_t dtype,
                               int32_t ldw, uint64_t bias, int32_t N, uint64_t y);

/* ------------------------------------------------------------------ GPTQ */
/**
 * Repacks a GPTQ qweight [K·bits/32, N] (int32, GPTQ's layout) into the kernels' layout
 * [K/32 chunks][bits words][N], taking input row perm[i] as sorted row i (perm: device int32
 * [K], or 0 for the identity). For 2/4/8 bits word w of chunk c holds the codes of rows
 * 32c + w·(32/bits) + t at bit t·bits (GPTQ's own layout when perm is 0); for 3 bits a chunk
 * is two words of 2-bit low parts (16 rows each) and one word of the 32 high bits.
 * K and N multiples of 32.
 */
GPTQ_API int gptq_gptq_repack(uint64_t qweight, int32_t K, int32_t N, int32_t bits,
                              uint64_t perm, uint64_t out);
/** y[m, i] = x[m, perm[i]] for x, y [M, K] (act-order: the input in sorted row order). */
GPTQ_API int gptq_gather_cols(uint64_t x, int32_t M, int32_t K, uint64_t perm, uint64_t y);
/**
 * y[M, N] = x[M, K] · Wᵀ + bias for a GPTQ weight in the layout of gptq_gptq_repack (x in
 * the same sorted row order). sz [G, N] uint32: the f16 scale in the low half, the f16 zero
 * point in the high half (v1 zeros already +1). Row k's group is k / gs when gs > 0, else
 * gtab[k] (device int32 [K]). bias [N] f32 or 0. Fused dequantizing GEMV up to
 * GPTQ_GPTQ_GEMV_MAX_ROWS rows, fused dequantizing tiled GEMM above; f32 accumulation.
 */
GPTQ_API int gptq_gptq_linear(uint64_t x, int32_t M, int32_t K, int32_t N, int32_t bits,
                              uint64_t qw, uint64_t sz, int32_t gs, uint64_t gtab, uint64_t bias,
                              uint64_t y);

/* ------------------------------------------------------------------ quantization */
/**
 * H = beta·H + alpha·XᵀX for H [K, K] and X [rows, K] (f32). AutoGPTQ's running average of
 * add_batch is beta = n/(n+b), alpha = 2/(n+b) for b new sequences after n.
 */
GPTQ_API int gptq_hessian_accumulate(uint64_t h, uint64_t x, int32_t rows, int32_t K, float alpha,
                                     float beta);

/* ------------------------------------------------------------------ the GPTQ solve
 * AutoGPTQ's fasterquant in three steps (src/backends/cuda/solver.ts drives them; the host
 * decides dead columns, the act-order permutation and the damping from gptq_solve_check):
 *   gptq_solve_check → gptq_solve_factor (raise the damping while *status != 0xffffffff)
 *   → gptq_solve_columns per band of rows. */
/** Largest blocksize of gptq_solve_columns. */
#define GPTQ_SOLVE_MAX_BLOCK 128
/**
 * out (device uint32 [1 + K]): out[0] = the smallest flat index i·K + j of a non-finite
 * H[i, j] (0xffffffff when none), out[1 + i] = the bits of the f32 H[i, i]. K <= 65535.
 */
GPTQ_API int gptq_solve_check(uint64_t h, int32_t K, uint64_t out);
/** Bytes of scratch gptq_solve_factor needs. */
GPTQ_API uint64_t gptq_solve_factor_scratch_bytes(int32_t K);
/**
 * u [K, K] := the upper Cholesky factor U of Hp⁻¹ (Hp⁻¹ = UᵀU, strictly lower part 0), with
 * Hp = H[perm][:, perm] whose diagonal is replaced by diag[perm[i]] + damp (diag: device f32
 * [K], dead columns 1; perm: device int32 [K], position → original column). h is only read.
 * *status (device uint32) := 0xffffffff on success, else the first failing pivot p of the
 * reversed matrix (AutoGPTQ's column K − 1 − p of Hp). scratch: gptq_solve_factor_scratch_bytes.
 */
GPTQ_API int gptq_solve_factor(uint64_t h, int32_t K, uint64_t perm, uint64_t diag, float damp,
                               uint64_t u, uint64_t scratch, uint64_t status);
/** Bytes of scratch gptq_solve_columns needs for rows rows. */
GPTQ_API uint64_t gptq_solve_columns_scratch_bytes(int32_t rows, int32_t K, int32_t blocksize);
/**
 * The GPTQ column loop on w [rows, K] (f32, original column order, only read) with U from
 * gptq_solve_factor: dead (device uint8 [K], original order) columns zeroed, columns in perm
 * order, blocks of blocksize (1..GPTQ_SOLVE_MAX_BLOCK) with lazy batch updates. bits 2/3/4/8;
 * group_size −1 (one group per row) or > 0; static_groups takes the group parameters from the
 * unpermuted weight up front. mse: device f32 [mse_steps] shrink factors (0/0 for min-max).
 * Outputs: codes uint8 [rows, K] (original order), scale and zero f32 [rows, G] (groups in
 * creation order), loss f32 [rows] (Σ (w − q)²/U[i,i]²/2 per row).
 */
GPTQ_API int gptq_solve_columns(uint64_t w, int32_t rows, int32_t K, uint64_t u, uint64_t perm,
                                uint64_t dead, uint64_t mse, int32_t mse_steps, int32_t bits,
                                int32_t group_size, int32_t sym, int32_t static_groups,
                                int32_t blocksize, uint64_t scratch, uint64_t codes,
                                uint64_t scale, uint64_t zero, uint64_t loss);
/** out[m] = Σ_k (D·H)[m, k]·D[m, k] for D [M, K], H [K, K]; y is scratch [M, K] f32. */
GPTQ_API int gptq_solve_error_sums(uint64_t h, int32_t K, uint64_t d, int32_t M, uint64_t y,
                                   uint64_t out);

#endif /* GPTQ_FFI_H */
