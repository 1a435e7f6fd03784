#include "slab.h"

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

}  // namespace dgram_ring
