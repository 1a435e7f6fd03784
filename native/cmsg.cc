#include "cmsg.h"

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
// Windows SDK ws2ipdef.h (10.0.19041); mingw-w64 lacks it. A DWORD: the
// segment size of a coalesced buffer (UDP_RECV_MAX_COALESCED_SIZE).
#ifndef UDP_COALESCED_INFO
#define UDP_COALESCED_INFO 3
#endif
#else
#include <netinet/in.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/udp.h>  // UDP_GRO
#endif

#include <cerrno>
#endif

#include <cstring>

namespace dgram_ring {

namespace {

#ifdef _WIN32
using ControlHeader = WSACMSGHDR;
using Pktinfo4 = IN_PKTINFO;
using Pktinfo6 = IN6_PKTINFO;
constexpr size_t ControlAlign(size_t length) { return WSA_CMSGHDR_ALIGN(length); }
constexpr size_t ControlLength(size_t payload) { return WSA_CMSG_LEN(payload); }
constexpr size_t ControlSpace(size_t payload) { return WSA_CMSG_SPACE(payload); }
#else
using ControlHeader = cmsghdr;
using Pktinfo4 = in_pktinfo;
using Pktinfo6 = in6_pktinfo;
constexpr size_t ControlAlign(size_t length) { return CMSG_ALIGN(length); }
constexpr size_t ControlLength(size_t payload) { return CMSG_LEN(payload); }
constexpr size_t ControlSpace(size_t payload) { return CMSG_SPACE(payload); }
#endif

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsV4Multicast(const uint8_t a[4]) { return (a[0] & 0xf0) == 0xe0; }

void DecodeV4(const Pktinfo4& info, bool ipv6_socket, Completion* out) {
  const uint8_t* dst = reinterpret_cast<const uint8_t*>(&info.ipi_addr);
  if (ipv6_socket) {
    memcpy(out->local_addr, kV4MappedPrefix, 12);
    memcpy(out->local_addr + 12, dst, 4);
    out->flags |= kLocalIPv6;
  } else {
    memcpy(out->local_addr, dst, 4);
    out->flags &= ~kLocalIPv6;
  }
  out->interface_index = static_cast<uint32_t>(info.ipi_ifindex);
  out->flags |= kHasLocal;
  if (IsV4Multicast(dst)) out->flags |= kMulticast;
#ifndef _WIN32
  // For unicast the kernel sets ipi_spec_dst to the header's destination; for
  // broadcast and multicast, to the local address it would answer from.
  // (Windows says so in the receive flags instead: MSG_BCAST / MSG_MCAST.)
  out->flags |= kHasBroadcastInfo;
  if (!IsV4Multicast(dst) && info.ipi_spec_dst.s_addr != info.ipi_addr.s_addr) out->flags |= kBroadcast;
#endif
}

void DecodeV6(const Pktinfo6& info, Completion* out) {
  const uint8_t* dst = reinterpret_cast<const uint8_t*>(&info.ipi6_addr);
  memcpy(out->local_addr, dst, 16);
  out->interface_index = static_cast<uint32_t>(info.ipi6_ifindex);
  out->flags |= kHasLocal | kLocalIPv6;
  bool v4_mapped = memcmp(dst, kV4MappedPrefix, 12) == 0;
  if (v4_mapped ? IsV4Multicast(dst + 12) : dst[0] == 0xff) out->flags |= kMulticast;
#ifndef _WIN32
  if (!v4_mapped) out->flags |= kHasBroadcastInfo;  // IPv6 has no broadcast
#endif
}

}  // namespace

size_t ControlBufferSize() {
  size_t size = ControlSpace(sizeof(Pktinfo6)) + ControlSpace(sizeof(Pktinfo4));
#ifdef UDP_GRO
  size += ControlSpace(sizeof(int));  // the segment size of a coalesced buffer
#endif
#ifdef _WIN32
  size += ControlSpace(sizeof(DWORD));  // UDP_COALESCED_INFO likewise
#endif
  return size;
}

void DecodeControl(const uint8_t* control, size_t length, bool ipv6_socket, Completion* out) {
  const size_t header_length = ControlLength(0);  // the header and its padding
  size_t offset = 0;
  while (length - offset >= sizeof(ControlHeader)) {
    ControlHeader header;
    memcpy(&header, control + offset, sizeof header);  // the buffer may be unaligned
    if (header.cmsg_len < header_length || header.cmsg_len > length - offset) return;
    const uint8_t* payload = control + offset + header_length;
    size_t payload_length = header.cmsg_len - header_length;
    if (header.cmsg_level == IPPROTO_IP && header.cmsg_type == IP_PKTINFO && payload_length >= sizeof(Pktinfo4)) {
      Pktinfo4 info;
      memcpy(&info, payload, sizeof info);
      DecodeV4(info, ipv6_socket, out);
    } else if (header.cmsg_level == IPPROTO_IPV6 && header.cmsg_type == IPV6_PKTINFO &&
               payload_length >= sizeof(Pktinfo6)) {
      Pktinfo6 info;
      memcpy(&info, payload, sizeof info);
      DecodeV6(info, out);
    }
#ifdef UDP_GRO
    else if (header.cmsg_level == IPPROTO_UDP && header.cmsg_type == UDP_GRO && payload_length >= sizeof(int)) {
      int segment_size;
      memcpy(&segment_size, payload, sizeof segment_size);
      out->segment_size = segment_size > 0 ? static_cast<uint32_t>(segment_size) : 0;
    }
#endif
#ifdef _WIN32
    else if (header.cmsg_level == IPPROTO_UDP && header.cmsg_type == UDP_COALESCED_INFO &&
             payload_length >= sizeof(DWORD)) {
      DWORD segment_size;
      memcpy(&segment_size, payload, sizeof segment_size);
      out->segment_size = static_cast<uint32_t>(segment_size);  // 0 or not below the length: one datagram (coalesce.h)
    }
#endif
    size_t advance = ControlAlign(header.cmsg_len);
    if (advance > length - offset) return;
    offset += advance;
  }
}

#ifndef _WIN32
int EnableControlMessages(int fd, bool ipv6_socket) {
  int on = 1;
  // A v6 socket may receive IPv4 (dual stack): Linux reports those with
  // IP_PKTINFO only, so ask for both.
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0 && !ipv6_socket) return -errno;
  if (ipv6_socket && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0) return -errno;
  return 0;
}
#endif

}  // namespace dgram_ring
