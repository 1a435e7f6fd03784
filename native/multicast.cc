#include "multicast.h"

#ifdef _WIN32
#include <ws2tcpip.h>

#include "win_errors.h"
#else
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#endif

#include "sockaddr.h"

namespace dgram_ring {

namespace {

#ifdef _WIN32
using OptionLength = int;
SysError Failed(const char* syscall) { return WsaError(syscall); }
SysError Invalid(const char* syscall) { return SysError{kUvEINVAL, syscall}; }
#else
using OptionLength = socklen_t;
SysError Failed(const char* syscall) { return SysError{-errno, syscall}; }
SysError Invalid(const char* syscall) { return SysError{-EINVAL, syscall}; }
#endif

template <typename T>
bool Set(SocketHandle socket, int level, int name, const T& value) {
  return setsockopt(socket, level, name, reinterpret_cast<const char*>(&value), static_cast<OptionLength>(sizeof value)) == 0;
}

// The interface index a join names: by index, or by name (POSIX only: JS
// refuses names on Windows, whose if_nametoindex names are not the ones users see).
SysError InterfaceIndex(const MulticastJoin& join, uint32_t* index) {
  *index = join.interface_index;
  if (join.interface_name.empty()) return SysError{};
#ifdef _WIN32
  return SysError{kUvENOTSUP, "if_nametoindex"};
#else
  *index = if_nametoindex(join.interface_name.c_str());
  if (*index == 0) return SysError{-ENODEV, "if_nametoindex"};
  return SysError{};
#endif
}

// The protocol-independent joins (RFC 3678) on interface `index`, for either
// family (`level`): `group`, from any source or (`source` not null) from that
// one only. Addresses are 4 or 16 bytes, network order.
SysError JoinByIndex(SocketHandle socket, int level, uint32_t index, const void* group, const void* source) {
  bool ipv6 = level == IPPROTO_IPV6;
  if (source == nullptr) {
    group_req request = {};
    request.gr_interface = index;
    WriteSockaddr(ipv6, static_cast<const uint8_t*>(group), 0, &request.gr_group);
    return Set(socket, level, MCAST_JOIN_GROUP, request) ? SysError{} : Failed("setsockopt");
  }
  group_source_req request = {};
  request.gsr_interface = index;
  WriteSockaddr(ipv6, static_cast<const uint8_t*>(group), 0, &request.gsr_group);
  WriteSockaddr(ipv6, static_cast<const uint8_t*>(source), 0, &request.gsr_source);
  return Set(socket, level, MCAST_JOIN_SOURCE_GROUP, request) ? SysError{} : Failed("setsockopt");
}

SysError JoinV4(SocketHandle socket, const MulticastJoin& join) {
  in_addr group = {}, source = {}, interface_address = {};
  if (inet_pton(AF_INET, join.group.c_str(), &group) != 1) return Invalid("inet_pton");
  bool specific = !join.source.empty();
  if (specific && inet_pton(AF_INET, join.source.c_str(), &source) != 1) return Invalid("inet_pton");
  uint32_t index = 0;
  if (SysError err = InterfaceIndex(join, &index)) return err;
  if (index == 0) {  // by address, or the OS's choice (INADDR_ANY)
    if (!join.interface_address.empty() && inet_pton(AF_INET, join.interface_address.c_str(), &interface_address) != 1)
      return Invalid("inet_pton");
    if (!specific) {
      ip_mreq request = {};
      request.imr_multiaddr = group;
      request.imr_interface = interface_address;
      return Set(socket, IPPROTO_IP, IP_ADD_MEMBERSHIP, request) ? SysError{} : Failed("setsockopt");
    }
    ip_mreq_source request = {};
    request.imr_multiaddr = group;
    request.imr_sourceaddr = source;
    request.imr_interface = interface_address;
    return Set(socket, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, request) ? SysError{} : Failed("setsockopt");
  }
  return JoinByIndex(socket, IPPROTO_IP, index, &group, specific ? &source : nullptr);
}

SysError JoinV6(SocketHandle socket, const MulticastJoin& join) {
  in6_addr group = {}, source = {};
  if (inet_pton(AF_INET6, join.group.c_str(), &group) != 1) return Invalid("inet_pton");
  bool specific = !join.source.empty();
  if (specific && inet_pton(AF_INET6, join.source.c_str(), &source) != 1) return Invalid("inet_pton");
  uint32_t index = 0;
  if (SysError err = InterfaceIndex(join, &index)) return err;
  if (!specific) {
    ipv6_mreq request = {};
    request.ipv6mr_multiaddr = group;
    request.ipv6mr_interface = index;
    return Set(socket, IPPROTO_IPV6, IPV6_JOIN_GROUP, request) ? SysError{} : Failed("setsockopt");
  }
  return JoinByIndex(socket, IPPROTO_IPV6, index, &group, &source);
}

}  // namespace

SysError JoinMulticastGroups(SocketHandle socket, const Options& options) {
  for (const MulticastJoin& join : options.multicast) {
    if (SysError err = options.ipv6 ? JoinV6(socket, join) : JoinV4(socket, join)) return err;
  }
  return SysError{};
}

}  // namespace dgram_ring
