// Copyright 2026 the GPTQ toolkit authors. MIT license.
//
// Errors, device queries, the stream, memory and asynchronous reads of the C ABI.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <mutex>
#include <vector>

#include "common.cuh"

namespace gptq {

namespace {
std::mutex g_mutex;        // guards g_error and the init state
char g_error[1024] = "";   // the last failing call's message (process-wide)
gpuStream_t g_stream = nullptr;
int g_device = -1;

// A trivial kernel: gptq_check_kernel_image asks the runtime for its attributes, which fails
// with "no kernel image" when the fat binary has no code for the device.
__global__ void probe_kernel(int* p) {
  if (p) *p = 0;
}

void vset_error(const char* fmt, va_list ap) {
  std::lock_guard<std::mutex> lock(g_mutex);
  vsnprintf(g_error, sizeof g_error, fmt, ap);
}
}  // namespace

void set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_error(fmt, ap);
  va_end(ap);
}

int invalid(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vset_error(fmt, ap);
  va_end(ap);
  return GPTQ_E_INVALID;
}

gpuStream_t stream() { return g_stream; }

// Deno runs nonblocking FFI calls on helper threads, whose current device is the runtime's
// default: the calls that can run there (waits, synchronous reads) select the device first.
static void bind_device() {
  if (g_device >= 0) (void)gpuSetDevice(g_device);
}

bool ready(const char* what) {
  if (g_stream) return true;
  set_error("%s: gptq_init was not called", what);
  return false;
}

int check(gpuError_t e, const char* what) {
  if (e == gpuSuccess) return 0;
  set_error("%s: %s (%s, code %d)", what, gpuGetErrorString(e), gpuGetErrorName(e), (int)e);
  return (int)e;
}

}  // namespace gptq

using namespace gptq;

namespace {
void free_stages();   // below, with gptq_memcpy_h2d
void free_tickets();  // below, with gptq_read_begin
}  // namespace

// ------------------------------------------------------------------ errors and versions

GPTQ_API const char* gptq_last_error(void) { return g_error; }

GPTQ_API int gptq_status_kind(int status) {
  if (status == 0) return GPTQ_KIND_OK;
  if (status < 0) return GPTQ_KIND_INVALID;
  switch ((gpuError_t)status) {
    case gpuErrorInsufficientDriver:
      return GPTQ_KIND_NO_DRIVER;
    case gpuErrorNoDevice:
      return GPTQ_KIND_NO_DEVICE;
    case gpuErrorNoKernelImage:
    case gpuErrorInvalidDeviceFunction:
      return GPTQ_KIND_NO_KERNEL_IMAGE;
    case gpuErrorMemoryAllocation:
      return GPTQ_KIND_OUT_OF_MEMORY;
    default:
      return GPTQ_KIND_OTHER;
  }
}

GPTQ_API int gptq_abi_version(void) { return GPTQ_ABI_VERSION; }

GPTQ_API const char* gptq_backend_name(void) { return GPTQ_BACKEND_NAME; }

// ------------------------------------------------------------------ devices

GPTQ_API int gptq_device_count(int32_t* count) {
  if (!count) return invalid("gptq_device_count: null count");
  int n = 0;
  int s = check(gpuGetDeviceCount(&n), "cudaGetDeviceCount");
  *count = s == 0 ? n : 0;
  return s;
}

GPTQ_API int gptq_versions(int32_t* driver, int32_t* runtime) {
  if (!driver || !runtime) return invalid("gptq_versions: null output");
  int d = 0, r = 0;
  // Without a driver cudaDriverGetVersion succeeds with 0; keep that, it is the fact.
  int s = check(gpuDriverGetVersion(&d), "cudaDriverGetVersion");
  if (s == 0) s = check(gpuRuntimeGetVersion(&r), "cudaRuntimeGetVersion");
  *driver = d;
  *runtime = r;
  return s;
}

GPTQ_API int gptq_device_info(int32_t dev, char* name, int32_t name_len, char* arch,
                              int32_t arch_len, uint64_t* total_bytes, int32_t* major,
                              int32_t* minor, int32_t* multiprocessors) {
  if (!name || !arch || name_len < 1 || arch_len < 1 || !total_bytes || !major || !minor ||
      !multiprocessors) {
    return invalid("gptq_device_info: null or empty output");
  }
  gpuDeviceProp p;
  memset(&p, 0, sizeof p);
  int s = check(gpuGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  if (s) return s;
  snprintf(name, (size_t)name_len, "%s", p.name);
#if defined(GPTQ_HIP_CPU)
  snprintf(arch, (size_t)arch_len, "%s", "cpu");
#elif defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
  snprintf(arch, (size_t)arch_len, "%s", p.gcnArchName);
#else
  snprintf(arch, (size_t)arch_len, "sm_%d%d", p.major, p.minor);
#endif
  *total_bytes = (uint64_t)p.totalGlobalMem;
  *major = p.major;
  *minor = p.minor;
  *multiprocessors = p.multiProcessorCount;
  return 0;
}

GPTQ_API int gptq_check_kernel_image(int32_t dev) {
  int s = check(gpuSetDevice(dev), "cudaSetDevice");
  if (s) return s;
  gpuFuncAttributes a;
  memset(&a, 0, sizeof a);
  return check(gpuFuncGetAttributes(&a, reinterpret_cast<const void*>(&probe_kernel)),
               "cudaFuncGetAttributes (is this GPU's architecture in the library?)");
}

GPTQ_API int gptq_init(int32_t dev) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_stream && g_device == dev) return 0;
  gpuError_t e = gpuSetDevice(dev);
  if (e == gpuSuccess && g_stream) {
    (void)gpuStreamSynchronize(g_stream);
    (void)gpuStreamDestroy(g_stream);
    g_stream = nullptr;
  }
  if (e == gpuSuccess) e = gpuStreamCreateNonBlocking(&g_stream);
  if (e != gpuSuccess) {
    snprintf(g_error, sizeof g_error, "gptq_init(%d): %s (%s, code %d)", dev,
             gpuGetErrorString(e), gpuGetErrorName(e), (int)e);
    g_stream = nullptr;
    return (int)e;
  }
  g_device = dev;
  return 0;
}

GPTQ_API int gptq_shutdown(void) {
  free_stages();
  free_tickets();
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_stream) return 0;
  gpuError_t e = gpuStreamSynchronize(g_stream);
  (void)gpuStreamDestroy(g_stream);
  g_stream = nullptr;
  g_device = -1;
  if (e != gpuSuccess) {
    snprintf(g_error, sizeof g_error, "gptq_shutdown: %s (code %d)", gpuGetErrorString(e), (int)e);
  }
  return (int)e;
}

GPTQ_API int gptq_mem_info(uint64_t* free_bytes, uint64_t* total_bytes) {
  if (!free_bytes || !total_bytes) return invalid("gptq_mem_info: null output");
  size_t f = 0, t = 0;
  int s = check(gpuMemGetInfo(&f, &t), "cudaMemGetInfo");
  *free_bytes = f;
  *total_bytes = t;
  return s;
}

// ------------------------------------------------------------------ memory

GPTQ_API int gptq_malloc(uint64_t bytes, uint64_t* out) {
  if (!out || bytes == 0) return invalid("gptq_malloc: %llu bytes", (unsigned long long)bytes);
  void* p = nullptr;
  gpuError_t e = gpuMalloc(&p, (size_t)bytes);
  if (e != gpuSuccess) {
    set_error("cudaMalloc(%llu bytes): %s (code %d)", (unsigned long long)bytes,
              gpuGetErrorString(e), (int)e);
    *out = 0;
    return (int)e;
  }
  *out = (uint64_t)(uintptr_t)p;
  return 0;
}

GPTQ_API int gptq_free(uint64_t ptr) {
  if (!ptr) return 0;
  return check(gpuFree(dptr<void>(ptr)), "cudaFree");
}

namespace {
// Host → device copies must leave the caller's buffer free when they return (a JS array may be
// collected at once), and runtimes differ on pageable async copies (HIP-CPU reads the source
// later). Small copies (token ids, activations) go through a ring of pinned staging buffers,
// each reused only after the event recorded behind its copy; large ones (weights, at load) are
// enqueued and waited for.
constexpr int N_STAGES = 32;
constexpr size_t STAGE_MAX = 1u << 20;
struct Stage {
  void* host = nullptr;
  size_t cap = 0;
  gpuEvent_t done = nullptr;
  bool pending = false;
};
Stage g_stages[N_STAGES];
int g_next_stage = 0;
std::mutex g_stage_mutex;

void free_stages() {
  std::lock_guard<std::mutex> lock(g_stage_mutex);
  for (Stage& s : g_stages) {
    if (s.pending) (void)gpuEventSynchronize(s.done);
    if (s.done) (void)gpuEventDestroy(s.done);
    if (s.host) (void)gpuHostFree(s.host);
    s = Stage{};
  }
}
}  // namespace

GPTQ_API int gptq_memcpy_h2d(uint64_t dst, const void* src, uint64_t bytes) {
  if (!ready("gptq_memcpy_h2d")) return GPTQ_E_NOT_INITIALIZED;
  if (bytes == 0) return 0;
  if (!dst || !src) return invalid("gptq_memcpy_h2d: null pointer");
  if (bytes > STAGE_MAX) {
    int s = check(gpuMemcpyAsync(dptr<void>(dst), src, (size_t)bytes, gpuMemcpyHostToDevice,
                                 stream()),
                  "cudaMemcpyAsync (host to device)");
    if (s) return s;
    return check(gpuStreamSynchronize(stream()), "cudaStreamSynchronize (host to device)");
  }
  std::lock_guard<std::mutex> lock(g_stage_mutex);
  Stage& st = g_stages[g_next_stage];
  g_next_stage = (g_next_stage + 1) % N_STAGES;
  int s = 0;
  if (st.pending) s = check(gpuEventSynchronize(st.done), "waiting for a staged copy");
  st.pending = false;
  if (!s && st.cap < bytes) {
    if (st.host) (void)gpuHostFree(st.host);
    st.host = nullptr;
    st.cap = 0;
    const size_t cap = bytes < 65536 ? 65536 : (size_t)bytes;
    s = check(gpuHostAlloc(&st.host, cap), "cudaMallocHost (upload staging)");
    if (!s) st.cap = cap;
  }
  if (!s && !st.done) s = check(gpuEventCreateNoTiming(&st.done), "cudaEventCreate");
  if (s) return s;
  memcpy(st.host, src, (size_t)bytes);
  s = check(gpuMemcpyAsync(dptr<void>(dst), st.host, (size_t)bytes, gpuMemcpyHostToDevice,
                           stream()),
            "cudaMemcpyAsync (host to device)");
  if (!s) s = check(gpuEventRecord(st.done, stream()), "cudaEventRecord");
  st.pending = s == 0;
  return s;
}

GPTQ_API int gptq_memcpy_d2h(void* dst, uint64_t src, uint64_t bytes) {
  if (!ready("gptq_memcpy_d2h")) return GPTQ_E_NOT_INITIALIZED;
  if (bytes == 0) return 0;
  if (!dst || !src) return invalid("gptq_memcpy_d2h: null pointer");
  bind_device();
  int s = check(gpuMemcpyAsync(dst, dptr<void>(src), (size_t)bytes, gpuMemcpyDeviceToHost, stream()),
                "cudaMemcpyAsync (device to host)");
  if (s) return s;
  return check(gpuStreamSynchronize(stream()), "cudaStreamSynchronize (device to host)");
}

GPTQ_API int gptq_memcpy_d2d(uint64_t dst, uint64_t src, uint64_t bytes) {
  if (!ready("gptq_memcpy_d2d")) return GPTQ_E_NOT_INITIALIZED;
  if (bytes == 0) return 0;
  if (!dst || !src) return invalid("gptq_memcpy_d2d: null pointer");
  return check(gpuMemcpyAsync(dptr<void>(dst), dptr<void>(src), (size_t)bytes,
                              gpuMemcpyDeviceToDevice, stream()),
               "cudaMemcpyAsync (device to device)");
}

GPTQ_API int gptq_memset(uint64_t dst, int32_t value, uint64_t bytes) {
  if (!ready("gptq_memset")) return GPTQ_E_NOT_INITIALIZED;
  if (bytes == 0) return 0;
  if (!dst) return invalid("gptq_memset: null pointer");
  return check(gpuMemsetAsync(dptr<void>(dst), value, (size_t)bytes, stream()), "cudaMemsetAsync");
}

GPTQ_API int gptq_sync(void) {
  if (!ready("gptq_sync")) return GPTQ_E_NOT_INITIALIZED;
  bind_device();
  return check(gpuStreamSynchronize(stream()), "cudaStreamSynchronize");
}

namespace {
// A read in flight: pinned staging memory (so the copy is truly asynchronous) and the event
// recorded after it. Owned by the caller's ticket from read_begin to read_end, then kept in a
// free list for the next read (pinned allocations are slow: one per decode step would show).
struct Ticket {
  void* host;
  uint64_t cap;
  uint64_t bytes;
  gpuEvent_t done;
};
std::mutex g_ticket_mutex;
std::vector<Ticket*> g_free_tickets;

Ticket* take_ticket(uint64_t bytes, int* status) {
  {
    std::lock_guard<std::mutex> lock(g_ticket_mutex);
    for (size_t i = 0; i < g_free_tickets.size(); i++) {
      if (g_free_tickets[i]->cap >= bytes) {
        Ticket* t = g_free_tickets[i];
        g_free_tickets.erase(g_free_tickets.begin() + (long)i);
        t->bytes = bytes;
        *status = 0;
        return t;
      }
    }
  }
  Ticket* t = new Ticket{nullptr, 0, bytes, nullptr};
  const uint64_t cap = bytes < 4096 ? 4096 : bytes;
  int s = check(gpuHostAlloc(&t->host, (size_t)cap), "cudaMallocHost (read staging)");
  if (!s) t->cap = cap;
  if (!s) s = check(gpuEventCreateNoTiming(&t->done), "cudaEventCreate");
  if (s) {
    if (t->done) (void)gpuEventDestroy(t->done);
    if (t->host) (void)gpuHostFree(t->host);
    delete t;
    t = nullptr;
  }
  *status = s;
  return t;
}

void give_ticket(Ticket* t) {
  std::lock_guard<std::mutex> lock(g_ticket_mutex);
  if (g_free_tickets.size() < 16) {
    g_free_tickets.push_back(t);
    return;
  }
  (void)gpuEventDestroy(t->done);
  (void)gpuHostFree(t->host);
  delete t;
}

void free_tickets() {
  std::lock_guard<std::mutex> lock(g_ticket_mutex);
  for (Ticket* t : g_free_tickets) {
    (void)gpuEventDestroy(t->done);
    (void)gpuHostFree(t->host);
    delete t;
  }
  g_free_tickets.clear();
}
}  // namespace

GPTQ_API int gptq_read_begin(uint64_t src, uint64_t bytes, uint64_t* ticket) {
  if (!ready("gptq_read_begin")) return GPTQ_E_NOT_INITIALIZED;
  if (!ticket || !src || bytes == 0) return invalid("gptq_read_begin: null pointer or 0 bytes");
  *ticket = 0;
  int s = 0;
  Ticket* t = take_ticket(bytes, &s);
  if (!t) return s;
  s = check(gpuMemcpyAsync(t->host, dptr<void>(src), (size_t)bytes, gpuMemcpyDeviceToHost,
                           stream()),
            "cudaMemcpyAsync (device to host)");
  if (!s) s = check(gpuEventRecord(t->done, stream()), "cudaEventRecord");
  if (s) {
    (void)gpuStreamSynchronize(stream());  // the copy may be enqueued: let it finish first
    give_ticket(t);
    return s;
  }
  *ticket = (uint64_t)(uintptr_t)t;
  return 0;
}

GPTQ_API int gptq_read_wait(uint64_t ticket) {
  Ticket* t = dptr<Ticket>(ticket);
  if (!t) return invalid("gptq_read_wait: null ticket");
  bind_device();  // this runs on a helper thread
  return check(gpuEventSynchronize(t->done), "reading results (a kernel before it failed?)");
}

GPTQ_API int gptq_read_end(uint64_t ticket, void* dst, uint64_t bytes) {
  Ticket* t = dptr<Ticket>(ticket);
  if (!t) return invalid("gptq_read_end: null ticket");
  int s = check(gpuEventSynchronize(t->done), "reading results (a kernel before it failed?)");
  if (!s && dst) {
    if (bytes > t->bytes) {
      s = invalid("gptq_read_end: %llu bytes asked, %llu staged", (unsigned long long)bytes,
                  (unsigned long long)t->bytes);
    } else {
      memcpy(dst, t->host, (size_t)bytes);
    }
  }
  give_ticket(t);
  return s;
}

GPTQ_API int gptq_event_create(uint64_t* event) {
  if (!event) return invalid("gptq_event_create: null output");
  gpuEvent_t e = nullptr;
  int s = check(gpuEventCreate(&e), "cudaEventCreate");
  *event = (uint64_t)(uintptr_t)e;
  return s;
}

GPTQ_API int gptq_event_record(uint64_t event) {
  if (!ready("gptq_event_record")) return GPTQ_E_NOT_INITIALIZED;
  return check(gpuEventRecord((gpuEvent_t)(uintptr_t)event, stream()),
               "cudaEventRecord");
}

GPTQ_API int gptq_event_elapsed(uint64_t start, uint64_t end, float* ms) {
  if (!ms) return invalid("gptq_event_elapsed: null output");
  bind_device();
  auto e1 = (gpuEvent_t)(uintptr_t)end;
  int s = check(gpuEventSynchronize(e1), "cudaEventSynchronize");
  if (s) return s;
  return check(gpuEventElapsedTime(ms, (gpuEvent_t)(uintptr_t)start, e1),
               "cudaEventElapsedTime");
}

GPTQ_API int gptq_event_destroy(uint64_t event) {
  if (!event) return 0;
  return check(gpuEventDestroy((gpuEvent_t)(uintptr_t)event),
               "cudaEventDestroy");
}
