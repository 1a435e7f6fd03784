#include "coalesce.h"

#include <algorithm>

namespace dgram_ring {

uint32_t SegmentCount(uint32_t wire_length, uint32_t segment_size) {
  if (segment_size == 0 || segment_size >= wire_length) return 1;
  uint32_t count = wire_length / segment_size + (wire_length % segment_size != 0 ? 1 : 0);
  return count <= kMaxSegments ? count : 1;
}

uint32_t SplitCoalesced(const Completion& whole, uint32_t wire_length, uint32_t segment_size, uint32_t buffer_size,
                        Completion* out) {
  uint32_t count = SegmentCount(wire_length, segment_size);
  uint32_t step = count == 1 ? wire_length : segment_size;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t offset = i * step;  // < wire_length <= 2^32 - 1: count * step covers it
    uint32_t on_wire = std::min(step, wire_length - offset);
    uint32_t captured = whole.length > offset ? std::min(on_wire, whole.length - offset) : 0;
    Completion& item = out[i];
    item = whole;
    item.data = whole.data + std::min(offset, whole.length);
    item.length = std::min(captured, buffer_size);
    item.flags = (whole.flags & ~kTruncated) | (item.length < on_wire ? kTruncated : 0u);
    item.segment_size = 0;
  }
  return count;
}

void CoalescedRing::Filled(uint32_t index, const Completion& whole, uint32_t wire_length) {
  wire_lengths_[index] = wire_length;
  if (SegmentCount(wire_length, whole.segment_size) > 1) coalesced_.fetch_add(1, std::memory_order_relaxed);
}

void CoalescedRing::Received(uint32_t buffers, uint64_t datagrams) {
  if (buffers == 0) return;
  uint64_t per_buffer = std::max<uint64_t>(datagrams / buffers, 1);
  per_buffer_ = static_cast<uint32_t>(std::min<uint64_t>(per_buffer, kMaxSegments));
}

uint32_t CoalescedRing::BuffersFor(uint32_t credits) const {
  return credits / per_buffer_ + (credits % per_buffer_ != 0 ? 1 : 0);
}

uint64_t CoalescedRing::Datagrams(const Completion* ring, uint32_t first, uint32_t count) const {
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t index = (first + i) % Size();
    total += SegmentCount(wire_lengths_[index], ring[index].segment_size);
  }
  return total;
}

const Completion* CoalescedRing::Split(const Completion* ring, uint32_t first, uint32_t count, uint32_t buffer_size,
                                       size_t* count_out) {
  size_t total = static_cast<size_t>(Datagrams(ring, first, count));
  if (split_.size() < total) split_.resize(total);
  size_t at = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t index = (first + i) % Size();
    at += SplitCoalesced(ring[index], wire_lengths_[index], ring[index].segment_size, buffer_size, &split_[at]);
  }
  *count_out = at;
  return split_.data();
}

}  // namespace dgram_ring
