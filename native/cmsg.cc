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

#if defined(_WIN32) && !defined(SO_TIMESTAMP)
// The cmsg SIO_TIMESTAMPING enables (mstcpip.h has it only for newer NTDDI_VERSIONs).
#define SO_TIMESTAMP 0x300A
#endif

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

// A TTL / hop limit or TOS / traffic class: an int (Linux sends IP_TOS as
// one byte). Returns false for a payload that is neither or out of 0..255.
bool ReadByteOrInt(const uint8_t* payload, size_t length, uint8_t* out) {
  int value;
  if (length >= sizeof(int)) {
    memcpy(&value, payload, sizeof value);
  } else if (length == 1) {
    value = payload[0];
  } else {
    return false;
  }
  if (value < 0 || value > 255) return false;
  *out = static_cast<uint8_t>(value);
  return true;
}

bool IsTtl(int level, int type) {
#ifdef _WIN32
  // Windows asks with IP_HOPLIMIT (named after IPv6's) and may answer with either.
  if (level == IPPROTO_IP && type == IP_HOPLIMIT) return true;
#endif
  return (level == IPPROTO_IP && type == IP_TTL) || (level == IPPROTO_IPV6 && type == IPV6_HOPLIMIT);
}

bool IsTos(int level, int type) {
  if (level == IPPROTO_IP) return type == IP_TOS;
  return level == IPPROTO_IPV6 && type == IPV6_TCLASS;
}

#ifdef _WIN32
// SIO_TIMESTAMPING stamps a datagram with QueryPerformanceCounter ticks: the
// wall clock now, less the ticks elapsed since, is the epoch time it arrived.
bool DecodeTimestamp(int level, int type, const uint8_t* payload, size_t length, uint64_t* ns) {
  if (level != SOL_SOCKET || type != SO_TIMESTAMP || length < sizeof(uint64_t)) return false;
  uint64_t ticks;
  memcpy(&ticks, payload, sizeof ticks);
  LARGE_INTEGER now, frequency;
  FILETIME wall;
  QueryPerformanceCounter(&now);
  QueryPerformanceFrequency(&frequency);
  GetSystemTimePreciseAsFileTime(&wall);
  uint64_t wall_100ns = (static_cast<uint64_t>(wall.dwHighDateTime) << 32) | wall.dwLowDateTime;
  constexpr uint64_t kEpochIn100ns = 116444736000000000ull;  // 1601 to 1970
  if (wall_100ns < kEpochIn100ns || frequency.QuadPart <= 0) return false;
  uint64_t wall_ns = (wall_100ns - kEpochIn100ns) * 100;
  uint64_t elapsed = static_cast<uint64_t>(now.QuadPart) > ticks ? static_cast<uint64_t>(now.QuadPart) - ticks : 0;
  uint64_t freq = static_cast<uint64_t>(frequency.QuadPart);
  uint64_t elapsed_ns = elapsed / freq * 1000000000ull + elapsed % freq * 1000000000ull / freq;
  if (elapsed_ns > wall_ns) return false;
  *ns = wall_ns - elapsed_ns;
  return true;
}
#else
bool IsTimestampType(int type) {
  if (type == SO_TIMESTAMPNS) return true;
#ifdef SO_TIMESTAMPNS_OLD
  if (type == SO_TIMESTAMPNS_OLD) return true;
#endif
#ifdef SO_TIMESTAMPNS_NEW
  if (type == SO_TIMESTAMPNS_NEW) return true;
#endif
  return false;
}

// SCM_TIMESTAMPNS: a timespec, two 64-bit words (64-bit time, whether the
// old or the new option), or two 32-bit ones (the old option on 32-bit).
bool DecodeTimestamp(int level, int type, const uint8_t* payload, size_t length, uint64_t* ns) {
  if (level != SOL_SOCKET || !IsTimestampType(type)) return false;
  int64_t seconds, nanoseconds;
  if (length >= 2 * sizeof(int64_t)) {
    memcpy(&seconds, payload, sizeof seconds);
    memcpy(&nanoseconds, payload + sizeof seconds, sizeof nanoseconds);
  } else if (length >= 2 * sizeof(int32_t)) {
    int32_t words[2];
    memcpy(words, payload, sizeof words);
    seconds = words[0];
    nanoseconds = words[1];
  } else {
    return false;
  }
  // Before the epoch, past 2554 (u64 ns) or a malformed nanosecond count: not a time.
  if (seconds < 0 || seconds > 18446744073 - 1 || nanoseconds < 0 || nanoseconds >= 1000000000) return false;
  *ns = static_cast<uint64_t>(seconds) * 1000000000ull + static_cast<uint64_t>(nanoseconds);
  return true;
}
#endif

#ifdef _WIN32
constexpr size_t kTimestampPayload = sizeof(uint64_t);
#else
constexpr size_t kTimestampPayload = 2 * sizeof(int64_t);
#endif

}  // namespace

size_t ControlBufferSize(const Options& options) {
  size_t size = ControlSpace(sizeof(Pktinfo6)) + ControlSpace(sizeof(Pktinfo4));
#ifdef UDP_GRO
  if (options.coalesce) size += ControlSpace(sizeof(int));  // the segment size of a coalesced buffer
#endif
#ifdef _WIN32
  if (options.coalesce) size += ControlSpace(sizeof(DWORD));  // UDP_COALESCED_INFO likewise
#endif
  // A dual-stack socket may get the IPv4 message and the IPv6 one (as wine
  // sends both pktinfos): room for two.
  size_t per_family = options.ipv6 ? 2 : 1;
  if (options.ttl) size += per_family * ControlSpace(sizeof(int));
  if (options.tos) size += per_family * ControlSpace(sizeof(int));
  if (options.timestamp) size += ControlSpace(kTimestampPayload);
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
    } else if (IsTtl(header.cmsg_level, header.cmsg_type)) {
      if (ReadByteOrInt(payload, payload_length, &out->ttl)) out->flags |= kHasTtl;
    } else if (IsTos(header.cmsg_level, header.cmsg_type)) {
      if (ReadByteOrInt(payload, payload_length, &out->tos)) out->flags |= kHasTos;
    } else if (DecodeTimestamp(header.cmsg_level, header.cmsg_type, payload, payload_length, &out->timestamp_ns)) {
      out->flags |= kHasTimestamp;
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
namespace {

// Sets the IPv4 option and, on an IPv6 socket, the IPv6 one too. A v6 socket
// may receive IPv4 (dual stack), which Linux reports with the IPv4 message
// only; a raw IPv6 socket, which never does, may refuse the IPv4 option.
int EnableBoth(int fd, bool ipv6_socket, int v4_name, int v6_name) {
  int on = 1;
  if (setsockopt(fd, IPPROTO_IP, v4_name, &on, sizeof on) < 0 && !ipv6_socket) return -errno;
  if (ipv6_socket && setsockopt(fd, IPPROTO_IPV6, v6_name, &on, sizeof on) < 0) return -errno;
  return 0;
}

}  // namespace

int EnableControlMessages(int fd, const Options& options) {
  const bool ipv6 = options.ipv6;
  if (int rc = EnableBoth(fd, ipv6, IP_PKTINFO, IPV6_RECVPKTINFO)) return rc;
  if (options.ttl) {
    if (int rc = EnableBoth(fd, ipv6, IP_RECVTTL, IPV6_RECVHOPLIMIT)) return rc;
  }
  if (options.tos) {
    if (int rc = EnableBoth(fd, ipv6, IP_RECVTOS, IPV6_RECVTCLASS)) return rc;
  }
  int on = 1;
  if (options.timestamp && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) return -errno;
  return 0;
}
#endif

}  // namespace dgram_ring
