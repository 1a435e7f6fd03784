#include "sockaddr.h"

#ifndef _WIN32
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace dgram_ring {

namespace {

// The interface a zone names: its index in decimal (on every OS), or its name
// (not on Windows, whose interface names are not what its APIs take; as in
// libuv there). False if it names none.
bool ZoneIndex(const std::string& zone, uint32_t* index) {
  if (zone.empty()) return false;
  if (zone.find_first_not_of("0123456789") == std::string::npos) {
    uint64_t value = 0;
    for (char digit : zone) {
      value = value * 10 + static_cast<uint64_t>(digit - '0');
      if (value > UINT32_MAX) return false;
    }
    *index = static_cast<uint32_t>(value);
    return value != 0;
  }
#ifdef _WIN32
  return false;
#else
  *index = if_nametoindex(zone.c_str());
  return *index != 0;
#endif
}

}  // namespace

bool ResolveBindAddress(const Options& options, sockaddr_storage* out, int* length) {
  // An IPv6 address may carry a zone, `fe80::1%eth0` (RFC 4007): resolved
  // here for any address, as node:dgram does, rather than left to
  // getaddrinfo (glibc takes one only on a link-local address, Windows only
  // as a number).
  std::string host = options.address;
  uint32_t scope = 0;
  size_t percent = host.find('%');
  if (percent != std::string::npos) {
    if (!options.ipv6 || !ZoneIndex(host.substr(percent + 1), &scope)) return false;
    host.resize(percent);
  }
  addrinfo hints = {};
  hints.ai_family = options.ipv6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_DGRAM;  // only the address matters here
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), "0", &hints, &found) != 0 || found == nullptr) return false;
  memset(out, 0, sizeof *out);
  *length = static_cast<int>(std::min<size_t>(found->ai_addrlen, sizeof *out));
  memcpy(out, found->ai_addr, static_cast<size_t>(*length));
  freeaddrinfo(found);
  uint16_t port = options.raw ? 0 : htons(options.port);
  if (options.ipv6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
    in6->sin6_port = port;
    if (percent != std::string::npos) in6->sin6_scope_id = scope;
  } else {
    reinterpret_cast<sockaddr_in*>(out)->sin_port = port;
  }
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

int WriteSockaddr(bool ipv6, const uint8_t* addr, uint16_t port, sockaddr_storage* name) {
  memset(name, 0, sizeof *name);
  if (ipv6) {
    auto* six = reinterpret_cast<sockaddr_in6*>(name);
    six->sin6_family = AF_INET6;
    six->sin6_port = htons(port);
    memcpy(&six->sin6_addr, addr, 16);
    return sizeof *six;
  }
  auto* four = reinterpret_cast<sockaddr_in*>(name);
  four->sin_family = AF_INET;
  four->sin_port = htons(port);
  memcpy(&four->sin_addr, addr, 4);
  return sizeof *four;
}

}  // namespace dgram_ring
