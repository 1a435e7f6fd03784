#include "slab.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace dgram_ring {

void Slab::Release(uint32_t count) {
  if (refs_.fetch_sub(count, std::memory_order_acq_rel) != count) return;
  pool_->Give(data_);
  delete this;  // drops the pool last: it may go with it
}

std::shared_ptr<SlabPool> SlabPool::Create(size_t slab_size, size_t keep) {
  return std::shared_ptr<SlabPool>(new SlabPool(slab_size, keep));
}

SlabPool::~SlabPool() {
  for (uint8_t* data : idle_) free(data);
}

Slab* SlabPool::Take() {
  uint8_t* data = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      data = idle_.back();
      idle_.pop_back();
    }
  }
  if (data == nullptr) data = static_cast<uint8_t*>(malloc(slab_size_));
  if (data == nullptr) return nullptr;
  Slab* slab = new (std::nothrow) Slab(data, slab_size_, shared_from_this());
  if (slab == nullptr) Give(data);
  return slab;
}

void SlabPool::Give(uint8_t* data) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.size() < keep_) {
      idle_.push_back(data);
      return;
    }
  }
  free(data);
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
