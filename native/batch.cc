#include "batch.h"

#include <cstring>

namespace dgram_ring {

size_t ItemsInCrossing(const Completion* items, size_t count, size_t* bytes) {
  size_t n = 0;
  *bytes = 0;
  while (n < count) {
    size_t size = kTableStride * sizeof(uint32_t) + items[n].length;
    if (n > 0 && *bytes + size > kMaxCrossingBytes) break;
    *bytes += size;
    n++;
  }
  return n;
}

void WriteBatch(const Completion* items, size_t count, uint8_t* memory) {
  uint32_t* table = reinterpret_cast<uint32_t*>(memory);
  size_t offset = count * kTableStride * sizeof(uint32_t);
  for (size_t i = 0; i < count; i++) {
    const Completion& item = items[i];
    uint32_t* row = table + i * kTableStride;
    row[kWordOffset] = static_cast<uint32_t>(offset);  // < kMaxCrossingBytes + 65535: no wrap
    row[kWordLength] = item.length;
    row[kWordFlags] = item.flags;
    row[kWordRemotePort] = item.remote_port;
    row[kWordInterfaceIndex] = item.interface_index;
    memcpy(row + kWordRemoteAddress, item.remote_addr, 16);
    memcpy(row + kWordLocalAddress, item.local_addr, 16);
    if (item.length > 0) memcpy(memory + offset, item.data, item.length);
    offset += item.length;
  }
}

}  // namespace dgram_ring
