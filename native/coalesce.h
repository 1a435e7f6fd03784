// UDP receive coalescing (Linux UDP_GRO): one receive buffer holds several
// datagrams of one flow back to back, each `segment_size` bytes but the last,
// which may be shorter. Backends split such a buffer into one Completion a
// datagram before Sink::Deliver, so credits, `received` and truncation keep
// counting datagrams.
#ifndef DGRAM_RING_COALESCE_H_
#define DGRAM_RING_COALESCE_H_

#include <cstddef>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

// Payload bytes of a coalescing receive buffer: the largest UDP payload, as a
// coalesced buffer is one IP packet to the socket (whatever bufferSize says,
// which still bounds each datagram).
constexpr uint32_t kCoalescedBufferBytes = 65535;

// The most datagrams the kernel puts in one buffer (its UDP_MAX_SEGMENTS); a
// segment size that would make more is not trusted.
constexpr uint32_t kMaxSegments = 128;

// How many datagrams a buffer of `wire_length` bytes with `segment_size` holds:
// 1 when the segment size is absent (0), not smaller than the length, or would
// make more than kMaxSegments.
uint32_t SegmentCount(uint32_t wire_length, uint32_t segment_size);

// Writes the SegmentCount datagrams of `whole` into `out`. `whole` is the
// buffer as received: data, `length` bytes captured of `wire_length` on the
// wire (more only if the buffer was too small), its addresses and flags.
// Each datagram keeps at most `buffer_size` bytes and is flagged kTruncated
// when it kept less than it had on the wire. Any thread. Returns the count.
uint32_t SplitCoalesced(const Completion& whole, uint32_t wire_length, uint32_t segment_size, uint32_t buffer_size,
                        Completion* out);

}  // namespace dgram_ring

#endif  // DGRAM_RING_COALESCE_H_
