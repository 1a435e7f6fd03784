// Ancillary-data (control message) decoding shared by the POSIX backends.
// The kernel writes the control buffer, but we still treat it as untrusted
// bytes: every length is checked before it is read.
#ifndef DGRAM_RING_CMSG_H_
#define DGRAM_RING_CMSG_H_

#include <cstddef>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

// Bytes of control buffer a slot needs for everything we ask the kernel for.
size_t ControlBufferSize();

// Reads IP_PKTINFO / IPV6_PKTINFO from `control` (`length` bytes, as the
// kernel reported in msg_controllen) into out->local_addr, interface_index
// and flags. On an IPv6 socket an IPv4 destination is written v4-mapped, so
// local and remote addresses share a family. Malformed input (a header that
// overruns the buffer, a payload too short for its type) ends decoding; what
// was decoded until then stays.
void DecodeControl(const uint8_t* control, size_t length, bool ipv6_socket, Completion* out);

// Asks the kernel for the control messages DecodeControl reads. Returns 0 or
// a negative errno.
int EnableControlMessages(int fd, bool ipv6_socket);

}  // namespace dgram_ring

#endif  // DGRAM_RING_CMSG_H_
