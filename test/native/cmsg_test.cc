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
    dgram_ring::Options coalescing;
    coalescing.coalesce = true;
    Check(dgram_ring::ControlBufferSize(coalescing) >= CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo)) + CMSG_SPACE(sizeof(int)),
          "the control buffer has room for pktinfo of both families and UDP_GRO");
  }

  {
    // Each metadata option costs control space only when on, and enough for
    // everything it asks for, in both families on an IPv6 socket.
    dgram_ring::Options none, all, all6;
    all.ttl = all.tos = all.timestamp = true;
    all6 = all;
    all6.ipv6 = true;
    const size_t base = dgram_ring::ControlBufferSize(none);
    Check(base == CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo)), "no option: room for pktinfo only");
    Check(base % alignof(cmsghdr) == 0 && dgram_ring::ControlBufferSize(all) % alignof(cmsghdr) == 0, "sizes stay aligned");
    for (int option = 0; option < 3; option++) {
      dgram_ring::Options one;
      (option == 0 ? one.ttl : option == 1 ? one.tos : one.timestamp) = true;
      Check(dgram_ring::ControlBufferSize(one) > base, "each option adds room");
    }
    Check(dgram_ring::ControlBufferSize(all) >= base + 2 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(timespec)),
          "all options: room for TTL, TOS and a timespec");
    Check(dgram_ring::ControlBufferSize(all6) >= base + 4 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(timespec)),
          "IPv6 socket: room for the IPv4 and IPv6 messages of both");

    // Everything at once, as the kernel sends it for IPv4 (IP_TOS is one byte).
    std::vector<uint8_t> control;
    Append(&control, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
    int ttl = 42;
    Append(&control, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    uint8_t tos = 0xb9;
    Append(&control, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    timespec when = {1795801854, 391671355};
    Append(&control, SOL_SOCKET, SO_TIMESTAMPNS, &when, sizeof when);
    Check(control.size() <= dgram_ring::ControlBufferSize(all), "what the kernel sends fits the buffer sized for it");
    Completion out = Decode(control, control.size(), false);
    Check((out.flags & dgram_ring::kHasTtl) && out.ttl == 42, "IP_TTL");
    Check((out.flags & dgram_ring::kHasTos) && out.tos == 0xb9, "IP_TOS, one byte");
    Check((out.flags & dgram_ring::kHasTimestamp) && out.timestamp_ns == 1795801854391671355ull, "SO_TIMESTAMPNS in ns since the epoch");
    Check(out.interface_index == 7, "pktinfo beside them");
    // Every truncation: a message is decoded whole or not at all.
    for (size_t length = 0; length < control.size(); length++) {
      Completion t = Decode(control, length, false);
      if (t.flags & dgram_ring::kHasTimestamp) Check(t.timestamp_ns == 1795801854391671355ull, "a cut buffer never gives half a timestamp");
      if (t.flags & dgram_ring::kHasTtl) Check(t.ttl == 42, "a cut buffer never gives half a TTL");
    }

    // IPv6: hop limit and traffic class are ints.
    std::vector<uint8_t> control6;
    int hops = 3, tclass = 0x2a;
    Append(&control6, IPPROTO_IPV6, IPV6_HOPLIMIT, &hops, sizeof hops);
    Append(&control6, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
    Completion out6 = Decode(control6, control6.size(), true);
    Check((out6.flags & dgram_ring::kHasTtl) && out6.ttl == 3, "IPV6_HOPLIMIT");
    Check((out6.flags & dgram_ring::kHasTos) && out6.tos == 0x2a, "IPV6_TCLASS");

    // Malformed payloads are ignored, and say so by the missing flag.
    std::vector<uint8_t> bad;
    int big = 300, negative = -1;
    uint16_t two = 64;
    Append(&bad, IPPROTO_IP, IP_TTL, &big, sizeof big);
    Append(&bad, IPPROTO_IPV6, IPV6_TCLASS, &negative, sizeof negative);
    Completion b = Decode(bad, bad.size(), true);
    Check(!(b.flags & (dgram_ring::kHasTtl | dgram_ring::kHasTos)), "TTL above 255 and a negative traffic class are ignored");
    std::vector<uint8_t> odd;
    Append(&odd, IPPROTO_IP, IP_TTL, &two, sizeof two);
    Append(&odd, IPPROTO_IP, IP_TOS, "", 0);
    Check(!(Decode(odd, odd.size(), false).flags & (dgram_ring::kHasTtl | dgram_ring::kHasTos)), "a two-byte TTL and an empty TOS are ignored");
    timespec bad_times[] = {{1, 1000000000}, {1, -1}, {-1, 0}};
    for (const timespec& bad_time : bad_times) {
      std::vector<uint8_t> stamp;
      Append(&stamp, SOL_SOCKET, SO_TIMESTAMPNS, &bad_time, sizeof bad_time);
      Check(!(Decode(stamp, stamp.size(), false).flags & dgram_ring::kHasTimestamp), "a malformed timespec is no time");
    }
    std::vector<uint8_t> short_stamp;
    Append(&short_stamp, SOL_SOCKET, SO_TIMESTAMPNS, &when, 4);
    Check(!(Decode(short_stamp, short_stamp.size(), false).flags & dgram_ring::kHasTimestamp), "a timespec cut short is no time");
    std::vector<uint8_t> old_stamp;
    Append(&old_stamp, SOL_SOCKET, SO_TIMESTAMP, &when, sizeof when);
    Check(!(Decode(old_stamp, old_stamp.size(), false).flags & dgram_ring::kHasTimestamp), "SO_TIMESTAMP (microseconds) is not ours");
  }
  return Report();
}
