// Multicast group joins (Options::multicast), shared by the POSIX and Windows
// socket openers: the same socket options on both, by their common names.
#ifndef DGRAM_RING_MULTICAST_H_
#define DGRAM_RING_MULTICAST_H_

#ifdef _WIN32
#include <winsock2.h>
#endif

#include "ring.h"

namespace dgram_ring {

#ifdef _WIN32
using SocketHandle = SOCKET;
#else
using SocketHandle = int;
#endif

// Joins every group of options.multicast on the bound socket `socket` of
// options' family: IP_ADD_MEMBERSHIP / IP_ADD_SOURCE_MEMBERSHIP for an IPv4
// interface given by address (or none), MCAST_JOIN_GROUP /
// MCAST_JOIN_SOURCE_GROUP for one given by index or name (IPv6 joins always
// name the interface by index: IPV6_JOIN_GROUP without a source). The first
// failure ends it, as the error of its call. Loop thread.
SysError JoinMulticastGroups(SocketHandle socket, const Options& options);

}  // namespace dgram_ring

#endif  // DGRAM_RING_MULTICAST_H_
