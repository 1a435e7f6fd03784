// Ancillary-data (control message) decoding, shared by every backend: POSIX
// cmsghdr and Windows WSACMSGHDR have the same layout rules. The kernel
// writes the control buffer, but we still treat it as untrusted bytes: every
// length is checked before it is read.
#ifndef DGRAM_RING_CMSG_H_
#define DGRAM_RING_CMSG_H_

#include <cstddef>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

// Bytes of control buffer a slot needs for everything `options` asks the OS
// for (a multiple of the headers' alignment, so slots laid end to end stay
// aligned): each metadata option costs its room only when on. Loop thread.
size_t ControlBufferSize(const Options& options);

// Reads IP_PKTINFO / IPV6_PKTINFO from `control` (`length` bytes, as the OS
// reported) into out->local_addr, interface_index and flags; the TTL / hop
// limit, TOS / traffic class and receive timestamp into out->ttl, tos and
// timestamp_ns (with kHasTtl, kHasTos, kHasTimestamp); UDP_GRO's segment size.
// Whichever thread received the datagram calls it. On an IPv6
// socket an IPv4 destination is written v4-mapped, so local and remote
// addresses share a family (whether the OS sent IP_PKTINFO, or IPV6_PKTINFO
// v4-mapped as wine does). Malformed input (a header that overruns the
// buffer, a payload too short for its type) ends decoding; what was decoded
// until then stays.
void DecodeControl(const uint8_t* control, size_t length, bool ipv6_socket, Completion* out);

#ifndef _WIN32
// Asks the kernel for the control messages DecodeControl reads (pktinfo
// always; ttl, tos and timestamp as `options` says). Returns 0 or a negative
// errno. Loop thread.
int EnableControlMessages(int fd, const Options& options);
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_CMSG_H_
