// Native buffers: 64-byte aligned, uninitialised, handed to JS as external ArrayBuffers. `free` releases the
// memory at once (deterministic, no waiting for the garbage collector) after detaching the ArrayBuffer so that
// no JS view can touch freed memory; the GC finalizer only frees what was never freed explicitly. V8 itself counts
// every byte in its external memory (the figure behind its external-memory GC heuristics): it adds an
// ArrayBuffer's length when the buffer is made, external or not, and takes it off at Detach (our free) or when the
// GC sweeps the buffer. So the footprint, leaked buffers included, is seen without reports from us; reporting the
// bytes again with AdjustExternalMemory, as we did, counted each of them twice (measured on Node 20.20: a 64 MB
// alloc moved the count by 128 MB, by 64 MB without our report) and made a training step's activations start
// twice as many major GCs.
//
// Buffers of kMapBytes and more are mappings of their own (mmap/munmap), not glibc heap blocks: freeing one gives
// its pages back to the system at once. glibc would mmap them too at first, but its threshold is dynamic: the
// first freed mapping raises it to that size (up to 32 MB), after which activations land in the brk heap, where
// a freed block below a live one stays resident (with large buffers going back to glibc instead of the allocator
// cache, a 1-tile QLoRA step grew to 2.8 GB of RSS for 360 MB of engine bytes). Measured
// on that step (bench:quant qlora's child) with free-on-miss: about 45 MB less peak RSS at the same engine bytes.
// Reuse of large buffers is the caching allocator's job (backend/native/cache.ts), so a mapping is made rarely.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/cpu.h"
#include "core/pool.h"
#include "glue/common.h"

namespace vk {
namespace {

struct Block {
  void* data;
  size_t bytes;
  void* map_base;  // non-null: a mapping of map_len bytes, released with munmap instead of free
  size_t map_len;
  bool freed;
};

constexpr size_t kHeader = 64;  // the Block* is stored just before the data
constexpr size_t kMapBytes = 256 << 10;  // buffers from this size on are mappings of their own (see above)

void release(Block* b) {
  if (b->freed) return;
  b->freed = true;
  warm_forget(b->data, (int64_t)b->bytes);  // no idle worker may read it once it is gone
  if (b->map_base) munmap(b->map_base, b->map_len);
  else std::free(static_cast<char*>(b->data) - kHeader);
}

void finalize(Napi::Env, void*, Block* b) {
  release(b);
  delete b;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t bytes = (size_t)i64arg(info[0]);
  bool zero = info.Length() > 1 && barg(info[1]);
  size_t total = ((bytes + kHeader + 63) / 64) * 64;
  void* map_base = nullptr;
  void* base;
  size_t map_len = 0;
  if (total >= kMapBytes) {
    // Zero-filled by the kernel (a zeroed buffer costs nothing more). The data starts a varying number of cache
    // lines into the mapping: at one page offset for every buffer, the weight streams a decode step reads side by
    // side (q/k/v, gate/up) would fall on the same cache sets (NF4 decode 80 -> 74 tokens/s, 17-tile prefill
    // 305 -> 294 on the 2-core machine; staggered, as fast as from glibc's heap).
    static std::atomic<unsigned> color{0};
    const size_t shift = 64 * (size_t)(color.fetch_add(1, std::memory_order_relaxed) % 61);
    map_len = total + shift;
    char* m = static_cast<char*>(mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    map_base = m == MAP_FAILED ? nullptr : m;
    base = map_base ? m + shift : nullptr;
  } else {
    base = std::aligned_alloc(64, total < 64 ? 64 : total);
  }
  if (!base) throw Napi::Error::New(env, "vlmkit: out of memory allocating " + std::to_string(bytes) + " bytes");
  char* data = static_cast<char*>(base) + kHeader;
  if (zero && !map_base) std::memset(data, 0, bytes);
  auto* b = new Block{data, bytes, map_base, map_len, false};
  *reinterpret_cast<Block**>(base) = b;
  return Napi::ArrayBuffer::New(env, data, bytes, finalize, b);
}

// Frees a buffer made by alloc/mmapFile now. Returns false for a buffer that is not ours (left to the GC).
Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return Napi::Boolean::New(env, false);
  bool ours = info.Length() > 1 && barg(info[1]);  // the caller (storage.ts) knows whether it allocated this
  if (!ours) return Napi::Boolean::New(env, false);
  char* data = static_cast<char*>(ab.Data());
  Block* b = *reinterpret_cast<Block**>(data - kHeader);
  ab.Detach();
  release(b);
  return Napi::Boolean::New(env, true);
}

// Maps a whole file read-only (private copy-on-write so that JS views are writable without touching the file).
// The mapping has a header page in front so that free() finds its Block like any other buffer.
Napi::Value MmapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Napi::Error::New(env, "vlmkit: cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  fstat(fd, &st);
  size_t bytes = (size_t)st.st_size;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  // Reserve header + file, then map the file just after the header page.
  char* base = static_cast<char*>(mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (base == MAP_FAILED) { close(fd); throw Napi::Error::New(env, "vlmkit: mmap failed for " + path); }
  if (bytes > 0) {
    void* m = mmap(base + page, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) { munmap(base, bytes + page); close(fd); throw Napi::Error::New(env, "vlmkit: mmap failed for " + path); }
  }
  close(fd);
  char* data = base + page;
  auto* b = new Block{data, bytes, base, bytes + page, false};
  *reinterpret_cast<Block**>(data - kHeader) = b;  // inside the anonymous header page
  // Mapped pages are file-backed and shared with the page cache, but V8 counts them in its external memory like
  // any ArrayBuffer (see the top of this file).
  return Napi::ArrayBuffer::New(env, data, bytes, finalize, b);
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads(iarg(info[0]));
  return info.Env().Undefined();
}

// warmCaches([typedArray...]): idle pool workers read these into the caches (see core/pool.h).
Napi::Value WarmCaches(const Napi::CallbackInfo& info) {
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<const void*> ptrs;
  std::vector<int64_t> bytes;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::TypedArray t = a.Get(i).As<Napi::TypedArray>();
    ptrs.push_back(static_cast<const char*>(t.ArrayBuffer().Data()) + t.ByteOffset());
    bytes.push_back((int64_t)t.ByteLength());
  }
  warm_caches(ptrs.data(), bytes.data(), (int)ptrs.size());
  return info.Env().Undefined();
}

void register_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("mmapFile", Napi::Function::New(env, MmapFile));
  exports.Set("warmCaches", Napi::Function::New(env, WarmCaches));
  exports.Set("numThreads", Napi::Function::New(env, NumThreads));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
}
VK_REGISTER(register_memory);

}  // namespace
}  // namespace vk
