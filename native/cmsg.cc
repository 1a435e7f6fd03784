#include "cmsg.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace dgram_ring {

namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsV4Multicast(const uint8_t a[4]) { return (a[0] & 0xf0) == 0xe0; }

void DecodeV4(const in_pktinfo& info, bool ipv6_socket, Completion* out) {
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
  out->flags |= kHasLocal | kHasBroadcastInfo;
  // For unicast the kernel sets ipi_spec_dst to the header's destination; for
  // broadcast and multicast, to the local address it would answer from.
  if (IsV4Multicast(dst)) {
    out->flags |= kMulticast;
  } else if (info.ipi_spec_dst.s_addr != info.ipi_addr.s_addr) {
    out->flags |= kBroadcast;
  }
}

void DecodeV6(const in6_pktinfo& info, Completion* out) {
  memcpy(out->local_addr, &info.ipi6_addr, 16);
  out->interface_index = info.ipi6_ifindex;
  out->flags |= kHasLocal | kLocalIPv6 | kHasBroadcastInfo;  // IPv6 has no broadcast
  if (info.ipi6_addr.s6_addr[0] == 0xff) out->flags |= kMulticast;
}

}  // namespace

size_t ControlBufferSize() {
  return CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));
}

void DecodeControl(const uint8_t* control, size_t length, bool ipv6_socket, Completion* out) {
  size_t offset = 0;
  while (offset + sizeof(cmsghdr) <= length) {
    cmsghdr header;
    memcpy(&header, control + offset, sizeof header);  // the buffer may be unaligned
    if (header.cmsg_len < CMSG_LEN(0) || header.cmsg_len > length - offset) return;
    const uint8_t* payload = control + offset + CMSG_LEN(0);
    size_t payload_length = header.cmsg_len - CMSG_LEN(0);
    if (header.cmsg_level == IPPROTO_IP && header.cmsg_type == IP_PKTINFO &&
        payload_length >= sizeof(in_pktinfo)) {
      in_pktinfo info;
      memcpy(&info, payload, sizeof info);
      DecodeV4(info, ipv6_socket, out);
    } else if (header.cmsg_level == IPPROTO_IPV6 && header.cmsg_type == IPV6_PKTINFO &&
               payload_length >= sizeof(in6_pktinfo)) {
      in6_pktinfo info;
      memcpy(&info, payload, sizeof info);
      DecodeV6(info, out);
    }
    size_t advance = CMSG_ALIGN(header.cmsg_len);
    if (advance > length - offset) return;
    offset += advance;
  }
}

int EnableControlMessages(int fd, bool ipv6_socket) {
  int on = 1;
  // A v6 socket may receive IPv4 (dual stack): Linux reports those with
  // IP_PKTINFO only, so ask for both.
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0 && !ipv6_socket) return -errno;
  if (ipv6_socket && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0) return -errno;
  return 0;
}

}  // namespace dgram_ring
