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

bool WorthLendingSlots(const Completion* ring, uint32_t ring_size, uint32_t first, uint32_t count, size_t unit) {
  size_t payload_bytes = 0;
  for (uint32_t i = 0; i < count; i++) payload_bytes += ring[(first + i) % ring_size].length;
  return WorthLending(payload_bytes, count * unit);
}

namespace {

void WriteRow(const Completion& item, uint32_t offset, uint32_t* row) {
  row[kWordOffset] = offset;
  row[kWordLength] = item.length;
  row[kWordFlags] = item.flags;
  row[kWordRemotePort] = item.remote_port;
  row[kWordInterfaceIndex] = item.interface_index;
  memcpy(row + kWordRemoteAddress, item.remote_addr, 16);
  memcpy(row + kWordLocalAddress, item.local_addr, 16);
  row[kWordTtlTos] = item.ttl | (static_cast<uint32_t>(item.tos) << 8);
  row[kWordTimestampLow] = static_cast<uint32_t>(item.timestamp_ns);
  row[kWordTimestampHigh] = static_cast<uint32_t>(item.timestamp_ns >> 32);
}

}  // namespace

void WriteBatch(const Completion* items, size_t count, uint8_t* memory) {
  uint32_t* table = reinterpret_cast<uint32_t*>(memory);
  size_t offset = count * kTableStride * sizeof(uint32_t);
  for (size_t i = 0; i < count; i++) {
    const Completion& item = items[i];
    WriteRow(item, static_cast<uint32_t>(offset), table + i * kTableStride);  // < kMaxCrossingBytes + 65535: no wrap
    if (item.length > 0) memcpy(memory + offset, item.data, item.length);
    offset += item.length;
  }
}

void WriteTable(const Completion* items, size_t count, const uint8_t* base, uint32_t* table) {
  for (size_t i = 0; i < count; i++) {
    // An empty payload may point anywhere (before `base`, even): offset 0.
    uint32_t offset = items[i].length > 0 ? static_cast<uint32_t>(items[i].data - base) : 0;
    WriteRow(items[i], offset, table + i * kTableStride);
  }
}

const uint8_t* PayloadRange(const Completion* items, size_t count, size_t* size) {
  const uint8_t* low = nullptr;
  const uint8_t* high = nullptr;
  for (size_t i = 0; i < count; i++) {
    if (items[i].length == 0) continue;
    const uint8_t* end = items[i].data + items[i].length;
    if (low == nullptr || items[i].data < low) low = items[i].data;
    if (high == nullptr || end > high) high = end;
  }
  *size = low == nullptr ? 0 : static_cast<size_t>(high - low);
  return low;
}

}  // namespace dgram_ring
