// Socket addresses, handled alike on every OS: the address a socket binds,
// and the addresses the OS reports.
#ifndef DGRAM_RING_SOCKADDR_H_
#define DGRAM_RING_SOCKADDR_H_

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <sys/socket.h>
#endif

#include <cstddef>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

// The address `options` asks to bind (numeric; empty is the wildcard) with its
// port (none for a raw socket) and, for IPv6, the scope its `%zone` names (an
// interface name or index). False if it is no numeric address of the socket's
// family (lib/socket.ts checks before we get here) or its zone names no
// interface.
bool ResolveBindAddress(const Options& options, sockaddr_storage* out, int* length);

// Copies the IPv4 or IPv6 address (network byte order) and port out of `name`
// (`length` bytes, as the OS reported). False for another family or a name
// too short for its family.
bool ReadSockaddr(const sockaddr_storage& name, size_t length, uint8_t addr[16], int* family, uint16_t* port);

// Writes an IPv6 (`ipv6`: 16 bytes of `addr`) or IPv4 (4 bytes) address and
// `port` into `name`, zeroed first; returns its length. Any thread.
int WriteSockaddr(bool ipv6, const uint8_t* addr, uint16_t port, sockaddr_storage* name);

}  // namespace dgram_ring

#endif  // DGRAM_RING_SOCKADDR_H_
