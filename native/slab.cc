#include "slab.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace dgram_ring {

Slab::~Slab() { free(data_); }

void Slab::Release(uint32_t count) {
  if (refs_.fetch_sub(count, std::memory_order_acq_rel) != count) return;
  std::shared_ptr<SlabPool> pool = std::move(pool_);  // an idle slab holds none (no cycle)
  pool->Give(this);  // drops the pool last: it may go with it
}

void Slab::Unpin() {
  if (pins_.fetch_sub(1, std::memory_order_acq_rel) == (kDiscarded | 1)) delete this;
}

void Slab::Discard() {
  if ((pins_.fetch_or(kDiscarded, std::memory_order_acq_rel) & ~kDiscarded) == 0) delete this;
}

std::shared_ptr<SlabPool> SlabPool::Create(size_t slab_size, size_t keep) {
  return std::shared_ptr<SlabPool>(new SlabPool(slab_size, keep));
}

SlabPool::~SlabPool() {
  for (Slab* slab : idle_) slab->Discard();
}

Slab* SlabPool::Take() {
  Slab* slab = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      slab = idle_.back();
      idle_.pop_back();
    }
  }
  if (slab != nullptr) {
    slab->refs_.store(1, std::memory_order_relaxed);
    slab->pool_ = shared_from_this();
    return slab;
  }
  uint8_t* data = static_cast<uint8_t*>(malloc(slab_size_));
  if (data == nullptr) return nullptr;
  slab = new (std::nothrow) Slab(data, slab_size_, shared_from_this());
  if (slab == nullptr) free(data);
  return slab;
}

void SlabPool::Give(Slab* slab) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.size() < keep_) {
      idle_.push_back(slab);
      return;
    }
  }
  slab->Discard();
}

SlabCutter::SlabCutter(size_t unit, size_t units) : unit_(unit) {
  size_t slab_bytes = std::max<size_t>(1, std::min(units, kMaxSlabBytes / unit)) * unit;
  pool_ = SlabPool::Create(slab_bytes, std::max<size_t>(2, kIdleSlabBytes / slab_bytes));
}

SlabCutter::~SlabCutter() {
  if (slab_ != nullptr) slab_->Release();
}

uint32_t SlabCutter::Reserve(uint32_t want) {
  size_t left = slab_ != nullptr ? (slab_->size() - used_) / unit_ : 0;
  if (left == 0) {
    if (slab_ != nullptr) slab_->Release();
    slab_ = pool_->Take();
    used_ = 0;
    if (slab_ == nullptr) return 0;
    left = slab_->size() / unit_;
  }
  return static_cast<uint32_t>(std::min<size_t>(want, left));
}

Slab* SlabCutter::Use(uint32_t count) {
  slab_->Retain(count);
  used_ += count * unit_;
  return slab_;
}

}  // namespace dgram_ring
