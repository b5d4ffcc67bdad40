// A caching CPU allocator for libtorch tensors.
//
// Why: on this platform a page fault costs ~10 us, and glibc gives large blocks back to the
// kernel (munmap/trim) when they are freed. PyTorch frees each temporary the moment Python drops
// it, so the next allocation reuses warm memory; lorkd frees temporaries at the end of a tidy()
// scope, and fresh pages had to be faulted in again on every step (a 64x58x7x7 convolution output
// took 2.3 ms to allocate and 0.1 ms to compute). Blocks from 4 KiB on are therefore kept in
// size-class free lists and reused; smaller ones go straight to the system allocator. (The bound
// was 64 KiB until 2026-12-07: on the inference path at 64 px most activations are 4-64 KiB, and
// glibc's malloc, free, consolidation and fresh pages for them cost ShuffleNetV2 at batch 1 about
// 13% of its forward (perf: libc 8%, kernel page faults 5%); caching them too gave +17-20% img/s at 64 px batch 8, +0-5% at batch 1,
// ResNet-18 at 64 px batch 1 +4-13%, no change at 224 px or in training steps, alternating runs.)
// LORKD_CACHING_ALLOCATOR=0 turns it off. memory() reports the cached bytes; emptyCache() frees them.
#include "common.h"

#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace {
constexpr size_t kAlign = 64;        // c10's alignment for CPU tensors
constexpr size_t kHeader = 64;       // keeps the data 64-byte aligned
constexpr size_t kCached = 4 << 10;  // blocks from this size on are cached

struct Header {
  size_t bytes;  // usable size of the block (its size class); 0 for uncached blocks
};

// Size classes: 8 per power of two (at most 12.5% rounding), in whole 4 KiB pages.
size_t sizeClass(size_t n) {
  size_t p = 1;
  while ((p << 1) <= n) p <<= 1;
  size_t step = p / 8;
  size_t c = (n + step - 1) / step * step;
  return (c + 4095) & ~size_t(4095);
}

class Cache {
 public:
  void* take(size_t n) {
    if (n < kCached) return fresh(n, 0);
    size_t c = sizeClass(n);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(c);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= c;
        return p;
      }
    }
    return fresh(c, c);
  }
  void give(void* p) {
    if (!p) return;
    Header* h = reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader);
    if (h->bytes == 0) {
      std::free(h);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    free_[h->bytes].push_back(p);
    cached_ += h->bytes;
  }
  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [c, v] : free_)
      for (void* p : v) std::free(static_cast<char*>(p) - kHeader);
    free_.clear();
    cached_ = 0;
  }
  int64_t cachedBytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(cached_);
  }

 private:
  static void* fresh(size_t n, size_t cls) {
    void* raw = nullptr;
    if (posix_memalign(&raw, kAlign, n + kHeader) != 0 || !raw) throw std::bad_alloc();
    static_cast<Header*>(raw)->bytes = cls;
    return static_cast<char*>(raw) + kHeader;
  }
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during exit
  return *c;
}

void release(void* p) { cache().give(p); }

struct CachingCPUAllocator final : public c10::Allocator {
  c10::DataPtr allocate(size_t n) const override {
    if (n == 0) return {nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU)};
    void* p = cache().take(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
};

bool install() {
  const char* e = std::getenv("LORKD_CACHING_ALLOCATOR");
  if (e && std::string(e) == "0") return false;
  static CachingCPUAllocator alloc;
  c10::SetCPUAllocator(&alloc, /*priority=*/1);
  return true;
}
const bool installed = install();
}  // namespace

DEF("cachingAllocator", {
  Napi::Object o = Napi::Object::New(ENV);
  o.Set("enabled", Napi::Boolean::New(ENV, installed));
  o.Set("cachedBytes", Napi::Number::New(ENV, static_cast<double>(cache().cachedBytes())));
  return o;
})
DEF("emptyCache", {
  cache().empty();
  return ENV.Undefined();
})
