// Payload memory the kernel receives into and JavaScript reads in place, so a
// payload is copied once (by the kernel). A backend cuts receive buffers out
// of a slab in order; the binding lends the part a batch used to JavaScript
// as an external ArrayBuffer that holds a reference. A slab goes back to its
// pool when the last reference is gone (the backend moved on, and every batch
// that viewed it was collected or given back), and is reused: its pages are already mapped,
// where fresh memory for every batch cost a page fault each 4 KiB (measured:
// 15 % of a coalescing receiver's CPU, with the copy another 23 %).
//
// A slab that JavaScript was lent is also pinned, once for each ArrayBuffer
// viewing it, until that ArrayBuffer is collected. A pin keeps the memory
// allocated, not out of use: a batch given back early (batches({recycle}))
// drops its use, and the slab may be received into again while old views of
// it remain. Their bytes may change then; their memory is never freed under
// them. The memory is freed when the slab is neither used, nor kept idle by
// its pool, nor pinned (whichever of those ends last frees it).
//
// Threads: Retain, Release, Pin and Unpin from any thread (the loop thread, a
// backend's receive thread, a finalizer); Take from whichever thread owns the
// backend's cutting at the time.
#ifndef DGRAM_RING_SLAB_H_
#define DGRAM_RING_SLAB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace dgram_ring {

class SlabPool;

class Slab {
 public:
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  void Retain(uint32_t count = 1) { refs_.fetch_add(count, std::memory_order_relaxed); }
  // The last release gives the slab back to its pool, to be received into again or discarded.
  void Release(uint32_t count = 1);
  // Only while in use (a reference is held): the memory stays allocated until the matching Unpin.
  void Pin() { pins_.fetch_add(1, std::memory_order_relaxed); }
  void Unpin();

 private:
  friend class SlabPool;
  static constexpr uint32_t kDiscarded = 1u << 31;  // in pins_: neither in use nor idle in a pool
  Slab(uint8_t* data, size_t size, std::shared_ptr<SlabPool> pool) : data_(data), size_(size), pool_(std::move(pool)) {}
  ~Slab();
  // Its pool let go of it (it keeps enough idle ones, or is gone): freed now, or by the last Unpin.
  void Discard();
  uint8_t* const data_;
  const size_t size_;
  std::atomic<uint32_t> refs_{1};
  std::atomic<uint32_t> pins_{0};  // ArrayBuffers viewing it, | kDiscarded
  std::shared_ptr<SlabPool> pool_;  // while in use: the pool outlives every slab in use
};

class SlabPool : public std::enable_shared_from_this<SlabPool> {
 public:
  // Slabs of `slab_size` bytes; at most `keep` idle ones are kept for reuse.
  static std::shared_ptr<SlabPool> Create(size_t slab_size, size_t keep);
  ~SlabPool();
  size_t slab_size() const { return slab_size_; }
  // A slab holding one reference (the caller's), or nullptr if memory is short.
  Slab* Take();

 private:
  friend class Slab;
  SlabPool(size_t slab_size, size_t keep) : slab_size_(slab_size), keep_(keep) {}
  void Give(Slab* slab);
  const size_t slab_size_;
  const size_t keep_;
  std::mutex mutex_;
  std::vector<Slab*> idle_;  // no references, no pool_; possibly pinned
};

// Cuts a backend's receive buffers (`unit` bytes each) in order out of slabs
// of its own pool: a slab of up to kMaxSlabBytes (at least one unit), and up
// to kIdleSlabBytes of idle ones kept for reuse. Used by one thread at a time
// (whichever receives).
class SlabCutter {
 public:
  static constexpr size_t kMaxSlabBytes = size_t{4} << 20;
  static constexpr size_t kIdleSlabBytes = size_t{16} << 20;

  // `units` is the most a backend cuts at once (a slab holds as many, if it may).
  SlabCutter(size_t unit, size_t units);
  ~SlabCutter();
  SlabCutter(const SlabCutter&) = delete;
  SlabCutter& operator=(const SlabCutter&) = delete;

  // The next unused units of the current slab, up to `want` (fewer at a
  // slab's end), after moving to a new slab if it has none left: their
  // count, 0 when memory is short. Nothing is used until Use.
  uint32_t Reserve(uint32_t want);
  // The address of reserved unit `i`.
  uint8_t* Unit(uint32_t i) const { return slab_->data() + used_ + i * unit_; }
  // The first `count` reserved units are taken: they hold one reference to
  // the slab each (returned: drop each with Slab::Release).
  Slab* Use(uint32_t count);

 private:
  const size_t unit_;
  std::shared_ptr<SlabPool> pool_;
  Slab* slab_ = nullptr;  // the slab being cut (one reference, ours)
  size_t used_ = 0;       // its bytes cut so far
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_SLAB_H_
