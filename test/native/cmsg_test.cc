// Unit test of the control-data decoder (native/cmsg.cc) against well-formed,
// malformed and truncated buffers. Built with AddressSanitizer and
// UndefinedBehaviorSanitizer by test/cmsg.test.mjs, so a read past a buffer
// fails the test even where it would not crash. Prints "N passed, N failed".
#include <linux/udp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "../../native/cmsg.h"

using dgram_ring::Completion;
using dgram_ring::DecodeControl;

// Appends one control message (header, payload, padding) as the kernel lays it out.
static void Append(std::vector<uint8_t>* buffer, int level, int type, const void* payload, size_t length) {
  size_t at = buffer->size();
  buffer->resize(at + CMSG_SPACE(length), 0);
  cmsghdr header = {};
  header.cmsg_len = CMSG_LEN(length);
  header.cmsg_level = level;
  header.cmsg_type = type;
  memcpy(buffer->data() + at, &header, sizeof header);
  memcpy(buffer->data() + at + CMSG_LEN(0), payload, length);
}

// Decodes from an exact-size heap copy, so ASan sees any read past the end.
static Completion Decode(const std::vector<uint8_t>& bytes, size_t length, bool ipv6_socket) {
  std::vector<uint8_t> exact(bytes.begin(), bytes.begin() + length);
  Completion out;
  DecodeControl(exact.data(), exact.size(), ipv6_socket, &out);
  return out;
}

int main() {
  in_pktinfo v4 = {};
  v4.ipi_ifindex = 7;
  v4.ipi_addr.s_addr = htonl(0x7f000002);  // 127.0.0.2
  v4.ipi_spec_dst.s_addr = v4.ipi_addr.s_addr;
  in6_pktinfo v6 = {};
  v6.ipi6_ifindex = 9;
  v6.ipi6_addr.s6_addr[15] = 1;  // ::1

  std::vector<uint8_t> good;
  Append(&good, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
  Completion a = Decode(good, good.size(), false);
  Check((a.flags & dgram_ring::kHasLocal) && a.interface_index == 7, "IPv4 pktinfo decoded");
  Check(memcmp(a.local_addr, "\x7f\x00\x00\x02", 4) == 0, "IPv4 destination");
  Check(!(a.flags & dgram_ring::kBroadcast) && !(a.flags & dgram_ring::kMulticast), "unicast");

  Completion mapped = Decode(good, good.size(), true);
  static const uint8_t kMapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x7f, 0, 0, 2};
  Check((mapped.flags & dgram_ring::kLocalIPv6) && memcmp(mapped.local_addr, kMapped, 16) == 0,
        "IPv4 destination v4-mapped on an IPv6 socket");

  in_pktinfo broadcast = v4;
  broadcast.ipi_addr.s_addr = htonl(0x7fffffff);
  std::vector<uint8_t> bcast;
  Append(&bcast, IPPROTO_IP, IP_PKTINFO, &broadcast, sizeof broadcast);
  Check(Decode(bcast, bcast.size(), false).flags & dgram_ring::kBroadcast, "broadcast: destination differs from spec_dst");

  std::vector<uint8_t> both;
  Append(&both, SOL_SOCKET, SO_TIMESTAMP, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);  // skipped: not ours
  Append(&both, IPPROTO_IPV6, IPV6_PKTINFO, &v6, sizeof v6);
  Completion b = Decode(both, both.size(), true);
  Check((b.flags & dgram_ring::kHasLocal) && b.interface_index == 9 && b.local_addr[15] == 1, "IPv6 pktinfo after a foreign message");

  // Every truncation of a valid buffer: never a read past the end, never a
  // partially decoded pktinfo (cutting only the trailing padding loses nothing).
  for (size_t length = 0; length < good.size(); length++) {
    Completion t = Decode(good, length, false);
    bool whole = length >= CMSG_LEN(sizeof v4);
    Check(!!(t.flags & dgram_ring::kHasLocal) == whole, "a truncated buffer decodes only a whole message");
  }
  for (size_t length = 0; length < both.size(); length++) Decode(both, length, true);

  // Malformed headers.
  std::vector<uint8_t> bad = good;
  cmsghdr header;
  memcpy(&header, bad.data(), sizeof header);
  const size_t lengths[] = {0, 1, CMSG_LEN(0) - 1, CMSG_LEN(sizeof v4) - 1, bad.size() + 1, static_cast<size_t>(-1)};
  for (size_t cmsg_len : lengths) {
    header.cmsg_len = cmsg_len;
    memcpy(bad.data(), &header, sizeof header);
    Completion m = Decode(bad, bad.size(), false);
    Check(!(m.flags & dgram_ring::kHasLocal), "a header whose length is wrong decodes nothing");
  }

  // A header that claims the rest of a long buffer of zeros, and random bytes.
  std::vector<uint8_t> noise(4096);
  unsigned seed = 12345;
  for (int round = 0; round < 2000; round++) {
    size_t length = seed % noise.size();
    for (size_t i = 0; i < length; i++) {
      seed = seed * 1103515245 + 12345;
      noise[i] = static_cast<uint8_t>(seed >> 16);
    }
    Decode(noise, length, round % 2 == 0);
  }
  Check(true, "random control bytes decoded without a fault");

  {
    // UDP_GRO: the segment size of a coalesced buffer; a negative one is none.
    std::vector<uint8_t> control;
    int segment = 1200;
    Append(&control, IPPROTO_UDP, UDP_GRO, &segment, sizeof segment);
    Append(&control, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
    Completion out = Decode(control, control.size(), false);
    Check(out.segment_size == 1200 && out.interface_index == 7, "UDP_GRO segment size, with pktinfo after it");
    Check(Decode(control, CMSG_LEN(sizeof segment) - 1, false).segment_size == 0, "a UDP_GRO header cut short is ignored");
    std::vector<uint8_t> negative;
    segment = -5;
    Append(&negative, IPPROTO_UDP, UDP_GRO, &segment, sizeof segment);
    Check(Decode(negative, negative.size(), false).segment_size == 0, "a negative segment size is none");
    Check(dgram_ring::ControlBufferSize() >= CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo)) + CMSG_SPACE(sizeof(int)),
          "the control buffer has room for pktinfo of both families and UDP_GRO");
  }
  return Report();
}
