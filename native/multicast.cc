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

#include <cstring>

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

template <typename Address>
void PutSockaddr(sockaddr_storage* storage, const Address& address) {
  memset(storage, 0, sizeof *storage);
  memcpy(storage, &address, sizeof address);
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
  sockaddr_in group_address = {};
  group_address.sin_family = AF_INET;
  group_address.sin_addr = group;
  if (!specific) {
    group_req request = {};
    request.gr_interface = index;
    PutSockaddr(&request.gr_group, group_address);
    return Set(socket, IPPROTO_IP, MCAST_JOIN_GROUP, request) ? SysError{} : Failed("setsockopt");
  }
  sockaddr_in source_address = {};
  source_address.sin_family = AF_INET;
  source_address.sin_addr = source;
  group_source_req request = {};
  request.gsr_interface = index;
  PutSockaddr(&request.gsr_group, group_address);
  PutSockaddr(&request.gsr_source, source_address);
  return Set(socket, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, request) ? SysError{} : Failed("setsockopt");
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
  sockaddr_in6 group_address = {};
  group_address.sin6_family = AF_INET6;
  group_address.sin6_addr = group;
  sockaddr_in6 source_address = {};
  source_address.sin6_family = AF_INET6;
  source_address.sin6_addr = source;
  group_source_req request = {};
  request.gsr_interface = index;
  PutSockaddr(&request.gsr_group, group_address);
  PutSockaddr(&request.gsr_source, source_address);
  return Set(socket, IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, request) ? SysError{} : Failed("setsockopt");
}

}  // namespace

SysError JoinMulticastGroups(SocketHandle socket, const Options& options) {
  for (const MulticastJoin& join : options.multicast) {
    if (SysError err = options.ipv6 ? JoinV6(socket, join) : JoinV4(socket, join)) return err;
  }
  return SysError{};
}

}  // namespace dgram_ring
