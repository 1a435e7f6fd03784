// Unit test of SplitCoalesced (native/coalesce.h): a UDP_GRO buffer split into
// datagrams, and segment sizes that are not trusted. Prints "N passed, N failed".
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.h"
#include "../../native/coalesce.h"

using namespace dgram_ring;

namespace {

Completion Buffer(const uint8_t* data, uint32_t length, uint32_t flags = 0) {
  Completion whole;
  whole.data = data;
  whole.length = length;
  whole.flags = flags | kHasLocal;
  whole.remote_port = 4242;
  whole.interface_index = 7;
  return whole;
}

}  // namespace

int main() {
  std::vector<uint8_t> bytes(kCoalescedBufferBytes);
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = static_cast<uint8_t>(i);
  std::vector<Completion> out(kMaxSegments);
  {
    // 4 × 100 bytes.
    uint32_t n = SplitCoalesced(Buffer(bytes.data(), 400), 400, 100, 2048, out.data());
    Check(n == 4, "400 bytes of 100-byte segments: 4 datagrams");
    bool ok = true;
    for (uint32_t i = 0; i < n; i++)
      ok = ok && out[i].length == 100 && out[i].data == bytes.data() + 100 * i && out[i].flags == kHasLocal &&
           out[i].remote_port == 4242 && out[i].interface_index == 7;
    Check(ok, "each datagram views its 100 bytes and keeps the buffer's metadata");
  }
  {
    // A segment size that does not divide the length: the last is shorter.
    uint32_t n = SplitCoalesced(Buffer(bytes.data(), 1000), 1000, 300, 2048, out.data());
    Check(n == 4, "1000 bytes of 300-byte segments: 4 datagrams");
    Check(out[3].length == 100 && out[3].data == bytes.data() + 900, "the last datagram holds the 100 left");
    Check((out[3].flags & kTruncated) == 0, "and is not truncated");
  }
  {
    // Untrusted segment sizes: one datagram, as received.
    Check(SplitCoalesced(Buffer(bytes.data(), 500), 500, 0, 2048, out.data()) == 1 && out[0].length == 500,
          "segment size 0: one datagram");
    Check(SplitCoalesced(Buffer(bytes.data(), 500), 500, 500, 2048, out.data()) == 1 && out[0].length == 500,
          "segment size equal to the length: one datagram");
    Check(SplitCoalesced(Buffer(bytes.data(), 500), 500, 9000, 2048, out.data()) == 1 && out[0].length == 500,
          "segment size larger than the length: one datagram");
    Check(SegmentCount(65535, 1) == 1 && SplitCoalesced(Buffer(bytes.data(), 65535), 65535, 1, 65535, out.data()) == 1,
          "segment size 1 on 65535 bytes (65535 segments, more than the kernel makes): one datagram");
    Check(SegmentCount(12800, 100) == 128 && SegmentCount(12801, 100) == 1, "at most kMaxSegments");
    Check(SplitCoalesced(Buffer(bytes.data(), 0), 0, 100, 2048, out.data()) == 1 && out[0].length == 0,
          "an empty datagram");
  }
  {
    // bufferSize still bounds each datagram: truncated, flagged, one a segment.
    uint32_t n = SplitCoalesced(Buffer(bytes.data(), 3000), 3000, 1400, 1000, out.data());
    Check(n == 3, "3000 bytes of 1400: 3 datagrams");
    Check(out[0].length == 1000 && (out[0].flags & kTruncated), "1400 kept as 1000, flagged");
    Check(out[1].data == bytes.data() + 1400 && out[1].length == 1000 && (out[1].flags & kTruncated),
          "the second starts at its segment, not after the kept bytes");
    Check(out[2].length == 200 && !(out[2].flags & kTruncated), "the last 200 fit");
    // One datagram (no segment size) larger than bufferSize.
    Check(SplitCoalesced(Buffer(bytes.data(), 3000), 3000, 0, 1000, out.data()) == 1 && out[0].length == 1000 &&
              (out[0].flags & kTruncated),
          "one 3000-byte datagram kept as 1000, flagged");
  }
  {
    // The buffer itself was too small (captured < wire length): datagrams past
    // what was captured still count, as truncated ones with what they kept.
    uint32_t n = SplitCoalesced(Buffer(bytes.data(), 250, kTruncated), 400, 100, 2048, out.data());
    Check(n == 4, "400 on the wire, 250 captured: still 4 datagrams");
    Check(out[1].length == 100 && !(out[1].flags & kTruncated), "whole ones are whole");
    Check(out[2].length == 50 && (out[2].flags & kTruncated), "the cut one keeps 50, flagged");
    Check(out[3].length == 0 && (out[3].flags & kTruncated), "one past the capture keeps nothing, flagged");
    Check(out[3].data <= bytes.data() + 250, "and points inside the buffer");
  }
  return Report();
}
