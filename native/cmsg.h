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

// Bytes of control buffer a slot needs for everything we ask the OS for (a
// multiple of the headers' alignment, so slots laid end to end stay aligned).
size_t ControlBufferSize();

// Reads IP_PKTINFO / IPV6_PKTINFO from `control` (`length` bytes, as the OS
// reported) into out->local_addr, interface_index and flags. On an IPv6
// socket an IPv4 destination is written v4-mapped, so local and remote
// addresses share a family (whether the OS sent IP_PKTINFO, or IPV6_PKTINFO
// v4-mapped as wine does). Malformed input (a header that overruns the
// buffer, a payload too short for its type) ends decoding; what was decoded
// until then stays.
void DecodeControl(const uint8_t* control, size_t length, bool ipv6_socket, Completion* out);

#ifndef _WIN32
// Asks the kernel for the control messages DecodeControl reads. Returns 0 or
// a negative errno.
int EnableControlMessages(int fd, bool ipv6_socket);
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_CMSG_H_
