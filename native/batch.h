// The memory of one native→JS crossing: a table of fixed-size rows of 32-bit
// words (one row a datagram), then every payload. lib/datagram.ts reads the
// same layout from the module's exports (`table`).
#ifndef DGRAM_RING_BATCH_H_
#define DGRAM_RING_BATCH_H_

#include <cstddef>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

enum TableWord : uint32_t {
  kWordOffset = 0,  // payload offset in the batch's memory
  kWordLength,
  kWordFlags,
  kWordRemotePort,
  kWordInterfaceIndex,
  kWordRemoteAddress,                          // 4 words, network byte order
  kWordLocalAddress = kWordRemoteAddress + 4,  // 4 words
  kWordTtlTos = kWordLocalAddress + 4,         // TTL / hop limit in the low byte, TOS / traffic class in the next
  kWordTimestampLow,                           // receive time in ns since the epoch, low 32 bits
  kWordTimestampHigh,                          // and high 32 bits
  kTableStride,
};

// The most bytes (table and payloads) one crossing carries; a larger batch is
// split. It keeps every offset far below 2^32 (table words are 32 bits) and
// every ArrayBuffer below any engine's limit: a ring of 65536 slots of 64 KiB
// would otherwise fill 4 GiB in one batch.
constexpr size_t kMaxCrossingBytes = size_t{64} << 20;
static_assert(kMaxCrossingBytes + 65535 + kTableStride * 4 < (size_t{1} << 31), "offsets fit in 31 bits");

// How many of `count` items, from the first, fit in one crossing (at least
// one: a datagram is at most 65535 bytes); *bytes is their memory size.
size_t ItemsInCrossing(const Completion* items, size_t count, size_t* bytes);

// Writes the table and payloads of `count` items into `memory` (the size
// ItemsInCrossing gave). Any thread.
void WriteBatch(const Completion* items, size_t count, uint8_t* memory);

// Writes only the table of `count` items whose payloads stay where they are,
// in memory JS sees from `base` on: offsets are counted from `base`.
void WriteTable(const Completion* items, size_t count, const uint8_t* base, uint32_t* table);

// Where the payloads of `count` items lie: the smallest range of memory from
// the first byte of one to the last byte of another (*size bytes from the
// returned address). *size is 0 when every item is empty.
const uint8_t* PayloadRange(const Completion* items, size_t count, size_t* size);

// Payloads filling at least 1/8 of the range they span are lent, not copied.
// Measured (512-byte datagrams in the default 2048-byte buffers, 800k/s): the
// copy into a fresh Buffer a batch cost 33 page faults a thousand datagrams
// and doubled the user CPU a datagram (412 → 197 ns) against lending; at 64
// bytes (3 %) the copy is a few KiB a batch and costs about what lending does.
constexpr size_t kLendDensity = 8;
inline bool WorthLending(size_t payload_bytes, size_t range) { return payload_bytes * kLendDensity >= range; }

// Whether `count` completions from `first` on (in a ring of `ring_size`), in
// buffers `unit` bytes apart, would be lent: a backend then hands them to JS
// one batch a slab; if not, they are copied anyway, and go as one batch.
bool WorthLendingSlots(const Completion* ring, uint32_t ring_size, uint32_t first, uint32_t count, size_t unit);

}  // namespace dgram_ring

#endif  // DGRAM_RING_BATCH_H_
