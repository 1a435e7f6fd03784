// The POSIX socket under a backend: opened, configured and bound as Options
// say, and the two things a close needs from it (stopping arrivals, reading
// the kernel's drop counter). Loop thread, unless a backend says otherwise.
#ifndef DGRAM_RING_POSIX_SOCKET_H_
#define DGRAM_RING_POSIX_SOCKET_H_

#include <cstdint>

#include "drop_counter.h"
#include "ring.h"

struct uv_poll_s;

namespace dgram_ring {

// Creates a non-blocking, close-on-exec socket, sets its options, asks for the
// control messages cmsg.cc decodes, and binds it. *fd is the descriptor (also
// after a failure, for the caller to close), or -1.
SysError OpenPosixSocket(const Options& options, int* fd);

// Stops new datagrams from joining the queue: from then on the kernel drops
// them and counts each in its drop counter (a socket filter's verdict counts
// there as a full queue does). Returns false where that is not possible
// (not Linux): nothing stops them then.
bool StopArrivals(int fd);

// The kernel's drop counter for the socket (Linux: SK_MEMINFO_DROPS, 32 bits:
// see DropCounter). False where the OS keeps none.
bool ReadKernelDrops(int fd, uint32_t* drops);

// The socket's drop counter as BackendStats::kernel_drops has it: read into
// a DropCounter when asked while the socket is open, its last reading once
// it is closed; -1 where the OS keeps none.
class SocketDrops {
 public:
  int64_t Read(int fd) {
    uint32_t reading = 0;
    if (ReadKernelDrops(fd, &reading)) {
      counter_.Update(reading);
      read_ = true;
    }
    return Last();
  }
  int64_t Last() const { return read_ ? static_cast<int64_t>(counter_.Total()) : -1; }

 private:
  DropCounter counter_;
  bool read_ = false;
};

// The address `fd` is bound to (getsockname), as Backend::LocalAddress gives it.
SysError SocketLocalAddress(int fd, uint8_t addr[16], int* family, uint16_t* port);

// SO_RCVBUF as the OS reports it (Backend::ReceiveBufferSize); 0 if unknown.
int SocketReceiveBufferSize(int fd);

// Backend::SetRef for a backend whose loop handle is `poll` (nullptr once closed).
void SetPollRef(uv_poll_s* poll, bool keep_alive);

// Receive errors that describe one earlier packet (ICMP reported on the
// socket), not the socket: the ring goes on.
bool IsPerPacketError(int err);

// Receive errors that describe the moment (memory is short), not the socket:
// counted and reported (Sink::Warn), and the ring tries again.
bool IsTransientError(int err);

}  // namespace dgram_ring

#endif  // DGRAM_RING_POSIX_SOCKET_H_
