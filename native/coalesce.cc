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

}  // namespace dgram_ring
