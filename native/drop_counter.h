// The kernel's drop counter for a socket (Linux: SK_MEMINFO_DROPS) is 32 bits
// and wraps; at a million drops a second it does so every 72 minutes. This
// keeps a 64-bit total by adding each reading's distance from the last one,
// modulo 2^32 (correct as long as fewer than 2^32 drops happen between two
// readings: at the rates a socket can drop, hours apart).
#ifndef DGRAM_RING_DROP_COUNTER_H_
#define DGRAM_RING_DROP_COUNTER_H_

#include <cstdint>

namespace dgram_ring {

class DropCounter {
 public:
  // Loop thread. `reading` is the kernel's counter now; returns the total.
  uint64_t Update(uint32_t reading) {
    total_ += static_cast<uint32_t>(reading - last_);
    last_ = reading;
    return total_;
  }
  uint64_t Total() const { return total_; }

 private:
  uint32_t last_ = 0;  // a new socket's counter starts at 0
  uint64_t total_ = 0;
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_DROP_COUNTER_H_
