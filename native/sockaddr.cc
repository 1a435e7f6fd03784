#include "sockaddr.h"

#ifndef _WIN32
#include <netdb.h>
#include <netinet/in.h>
#endif

#include <algorithm>
#include <cstring>

namespace dgram_ring {

bool ResolveBindAddress(const Options& options, sockaddr_storage* out, int* length) {
  addrinfo hints = {};
  hints.ai_family = options.ipv6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_DGRAM;  // only the address matters here
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* found = nullptr;
  const char* host = options.address.empty() ? nullptr : options.address.c_str();
  if (getaddrinfo(host, "0", &hints, &found) != 0 || found == nullptr) return false;
  memset(out, 0, sizeof *out);
  *length = static_cast<int>(std::min<size_t>(found->ai_addrlen, sizeof *out));
  memcpy(out, found->ai_addr, static_cast<size_t>(*length));
  freeaddrinfo(found);
  uint16_t port = options.raw ? 0 : htons(options.port);
  if (options.ipv6)
    reinterpret_cast<sockaddr_in6*>(out)->sin6_port = port;
  else
    reinterpret_cast<sockaddr_in*>(out)->sin_port = port;
  return true;
}

bool ReadSockaddr(const sockaddr_storage& name, size_t length, uint8_t addr[16], int* family, uint16_t* port) {
  if (name.ss_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(name);
    memcpy(addr, &in6.sin6_addr, 16);
    *port = ntohs(in6.sin6_port);
    *family = 6;
    return true;
  }
  if (name.ss_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto& in4 = reinterpret_cast<const sockaddr_in&>(name);
    memcpy(addr, &in4.sin_addr, 4);
    *port = ntohs(in4.sin_port);
    *family = 4;
    return true;
  }
  return false;
}

}  // namespace dgram_ring
