// UDP receive coalescing (Linux UDP_GRO): one receive buffer holds several
// datagrams of one flow back to back, each `segment_size` bytes but the last,
// which may be shorter. Backends split such a buffer into one Completion a
// datagram before Sink::Deliver, so credits, `received` and truncation keep
// counting datagrams.
#ifndef DGRAM_RING_COALESCE_H_
#define DGRAM_RING_COALESCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

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

// What a backend with Options::coalesce keeps beside its ring of `size`
// completions (indexed as the backend indexes them, modulo `size`): each
// buffer's length on the wire, the split-out datagrams of a delivery, and the
// datagrams a buffer held lately, by which credits (datagrams) become buffers.
// Threads: Filled on whichever thread receives into the buffer (a receive
// thread owns the buffers it fills); the rest on the loop thread.
class CoalescedRing {
 public:
  void Resize(uint32_t size) { wire_lengths_.assign(size, 0); }

  // Buffer `index` was received, `whole` as decoded (segment_size from the
  // UDP_GRO control message), `wire_length` bytes on the wire.
  void Filled(uint32_t index, const Completion& whole, uint32_t wire_length);
  // A delivery split `buffers` buffers into `datagrams` datagrams.
  void Received(uint32_t buffers, uint64_t datagrams);
  // The buffers `credits` datagrams pay for, judging by the last delivery.
  uint32_t BuffersFor(uint32_t credits) const;

  // The datagrams `count` buffers of `ring` from `first` on hold.
  uint64_t Datagrams(const Completion* ring, uint32_t first, uint32_t count) const;
  // Those datagrams, in order, split out (each at most `buffer_size` bytes);
  // valid until the next call. *count_out says how many.
  const Completion* Split(const Completion* ring, uint32_t first, uint32_t count, uint32_t buffer_size,
                          size_t* count_out);

  uint64_t coalesced() const { return coalesced_.load(std::memory_order_relaxed); }

 private:
  uint32_t Size() const { return static_cast<uint32_t>(wire_lengths_.size()); }
  std::vector<uint32_t> wire_lengths_;
  std::vector<Completion> split_;
  std::atomic<uint64_t> coalesced_{0};  // buffers that held more than one datagram
  uint32_t per_buffer_ = 1;  // datagrams a buffer held in the last delivery
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_COALESCE_H_
