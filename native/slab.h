// Payload memory the kernel receives into and JavaScript reads in place, so a
// payload is copied once (by the kernel). A backend cuts receive buffers out
// of a slab in order; the binding lends the part a batch used to JavaScript
// as an external ArrayBuffer that holds a reference. A slab goes back to its
// pool when the last reference is gone (the backend moved on, and every batch
// that viewed it was collected), and is reused: its pages are already mapped,
// where fresh memory for every batch cost a page fault each 4 KiB (measured:
// 15 % of a coalescing receiver's CPU, with the copy another 23 %).
//
// Threads: Retain and Release from any thread (the loop thread, a backend's
// receive thread, a finalizer); Take from whichever thread owns the backend's
// cutting at the time.
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
  // The last release gives the memory back to the pool and deletes this.
  void Release(uint32_t count = 1);

 private:
  friend class SlabPool;
  Slab(uint8_t* data, size_t size, std::shared_ptr<SlabPool> pool) : data_(data), size_(size), pool_(std::move(pool)) {}
  uint8_t* const data_;
  const size_t size_;
  std::atomic<uint32_t> refs_{1};
  std::shared_ptr<SlabPool> pool_;  // outlives every slab, whoever lets go last
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
  void Give(uint8_t* data);
  const size_t slab_size_;
  const size_t keep_;
  std::mutex mutex_;
  std::vector<uint8_t*> idle_;
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_SLAB_H_
