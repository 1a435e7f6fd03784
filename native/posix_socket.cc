#include "posix_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <cerrno>

#ifdef __linux__
#include <linux/filter.h>     // SO_ATTACH_FILTER
#include <linux/sock_diag.h>  // SK_MEMINFO_DROPS
#include <linux/udp.h>        // UDP_GRO
#endif

#include "cmsg.h"
#include "multicast.h"
#include "sockaddr.h"

namespace dgram_ring {

namespace {

SysError Errno(const char* syscall) { return SysError{-errno, syscall}; }

// SO_RCVBUFFORCE passes the rmem_max cap when we may (CAP_NET_ADMIN); users
// who ask for a large buffer mean it.
void SetReceiveBuffer(int fd, int bytes) {
#ifdef SO_RCVBUFFORCE
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) return;
#endif
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

// Options::spread_over: the reuseport group's program, attached after bind
// (the group then exists; the program is the group's, so each member
// attaching the same one replaces it with its equal). `ld rand; mod n; ret a`:
// the kernel takes the return as an index into the group in join order (an
// index past its end falls back to the flow hash, as while the group is
// still forming), so every datagram goes to one of the first n members with
// equal chance, whatever flow it belongs to.
SysError SpreadOverGroup(int fd, uint32_t n) {
#if defined(__linux__) && defined(SO_ATTACH_REUSEPORT_CBPF)
  sock_filter spread[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_RANDOM)},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, n},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program = {3, spread};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) < 0) return Errno("setsockopt");
  return SysError{};
#else
  (void)fd;
  (void)n;
  return SysError{-ENOTSUP, "setsockopt"};
#endif
}

}  // namespace

SysError OpenPosixSocket(const Options& options, int* fd) {
  int family = options.ipv6 ? AF_INET6 : AF_INET;
  int type = options.raw ? SOCK_RAW : SOCK_DGRAM;
  int protocol = options.raw ? options.protocol : 0;
#ifdef SOCK_CLOEXEC
  *fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (*fd < 0) return Errno("socket");
#else
  *fd = socket(family, type, protocol);
  if (*fd < 0) return Errno("socket");
  if (fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK) < 0) return Errno("fcntl");
  if (fcntl(*fd, F_SETFD, FD_CLOEXEC) < 0) return Errno("fcntl");
#endif
  int on = 1;
  if (options.reuse_addr && setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) return Errno("setsockopt");
  if (options.reuse_port) {
#ifdef SO_REUSEPORT
    if (setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) return Errno("setsockopt");
#else
    return SysError{-ENOTSUP, "setsockopt"};
#endif
  }
  if (options.ipv6 && !options.raw) {  // a raw IPv6 socket never sees IPv4
    int only = options.ipv6_only ? 1 : 0;
    if (setsockopt(*fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only) < 0) return Errno("setsockopt");
  }
  if (options.recv_buffer_size > 0) SetReceiveBuffer(*fd, options.recv_buffer_size);
  if (options.coalesce) {
#ifdef UDP_GRO
    if (setsockopt(*fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) < 0) return Errno("setsockopt");
#else
    return SysError{-ENOTSUP, "setsockopt"};
#endif
  }
  int rc = EnableControlMessages(*fd, options);
  if (rc < 0) return SysError{rc, "setsockopt"};
  sockaddr_storage address;
  int length = 0;
  if (!ResolveBindAddress(options, &address, &length)) return SysError{-EINVAL, "getaddrinfo"};
  if (bind(*fd, reinterpret_cast<sockaddr*>(&address), static_cast<socklen_t>(length)) < 0) return Errno("bind");
  if (SysError err = JoinMulticastGroups(*fd, options)) return err;
  if (options.spread_over > 0) return SpreadOverGroup(*fd, options.spread_over);
  return SysError{};
}

bool StopArrivals(int fd) {
#ifdef __linux__
  sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  sock_fprog program = {1, drop_all};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) == 0;
#else
  return false;
#endif
}

bool ReadKernelDrops(int fd, uint32_t* drops) {
#if defined(__linux__) && defined(SO_MEMINFO)
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t length = sizeof meminfo;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 && length > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    *drops = meminfo[SK_MEMINFO_DROPS];
    return true;
  }
#endif
  return false;
}

SysError SocketLocalAddress(int fd, uint8_t addr[16], int* family, uint16_t* port) {
  sockaddr_storage name;
  socklen_t length = sizeof name;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&name), &length) < 0) return Errno("getsockname");
  if (!ReadSockaddr(name, length, addr, family, port)) return SysError{-EAFNOSUPPORT, "getsockname"};
  return SysError{};
}

void SetPollRef(uv_poll_t* poll, bool keep_alive) {
  if (poll == nullptr) return;
  if (keep_alive)
    uv_ref(reinterpret_cast<uv_handle_t*>(poll));
  else
    uv_unref(reinterpret_cast<uv_handle_t*>(poll));
}

int SocketReceiveBufferSize(int fd) {
  int bytes = 0;
  socklen_t length = sizeof bytes;
  return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, &length) == 0 ? bytes : 0;
}

bool IsPerPacketError(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == ENETRESET;
}

bool IsTransientError(int err) { return err == ENOMEM || err == ENOBUFS; }

}  // namespace dgram_ring
