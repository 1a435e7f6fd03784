// Opening the iocp backend's socket (win_socket.h). Loop thread.
#include "win_socket.h"

#include <ws2tcpip.h>
#include <mstcpip.h>

#include "coalesce.h"
#include "multicast.h"
#include "sockaddr.h"
#include "win_errors.h"

// The Windows SDK has these in mstcpip.h, mingw-w64 has the first in
// mswsock.h and not the second (Windows 8's "stop reporting TTL expiry").
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef SIO_UDP_NETRESET
#define SIO_UDP_NETRESET _WSAIOW(IOC_VENDOR, 15)
#endif
// Windows SDK ws2ipdef.h (10.0.19041); mingw-w64 lacks it.
#ifndef UDP_RECV_MAX_COALESCED_SIZE
#define UDP_RECV_MAX_COALESCED_SIZE 3
#endif

// Receive timestamps (Windows 10 1903+); mingw-w64 declares them only for
// newer NTDDI_VERSIONs than we build for. The layout is TIMESTAMPING_CONFIG's.
#ifndef SIO_TIMESTAMPING
#define SIO_TIMESTAMPING _WSAIOW(IOC_VENDOR, 235)
#endif
struct TimestampingConfig {
  ULONG flags;
  USHORT tx_timestamps_buffered;
};
constexpr ULONG kTimestampingFlagRx = 0x1;  // TIMESTAMPING_FLAG_RX

namespace dgram_ring {

namespace {

// Once a process, and never undone: other sockets (Node's own among them) may
// share the library with us until the process exits.
SysError StartWinsock() {
  static const int result = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data);
  }();
  return result == 0 ? SysError{} : SysError{TranslateError(result), "WSAStartup"};
}

// Returns true on failure, with the error in WSAGetLastError().
bool SetOption(SOCKET socket, int level, int name, DWORD value) {
  return setsockopt(socket, level, name, reinterpret_cast<const char*>(&value), sizeof value) == SOCKET_ERROR;
}

// Turns on the IPv4 option and, on an IPv6 socket, the IPv6 one too: a v6
// socket may receive IPv4 (dual stack), and goes on without the IPv4 option,
// as cmsg.cc's EnableBoth does on POSIX. True if one that matters failed
// (WSAGetLastError says why), as SetOption.
bool EnableBoth(SOCKET socket, bool ipv6, int v4_name, int v6_name) {
  if (SetOption(socket, IPPROTO_IP, v4_name, 1) && !ipv6) return true;
  return ipv6 && SetOption(socket, IPPROTO_IPV6, v6_name, 1);
}

void SetIoctl(SOCKET socket, DWORD code, BOOL value) {
  DWORD returned = 0;
  WSAIoctl(socket, code, &value, sizeof value, nullptr, 0, &returned, nullptr, nullptr);
}

SysError Bind(SOCKET socket, const Options& options) {
  sockaddr_storage address;
  int length = 0;
  if (!ResolveBindAddress(options, &address, &length)) return SysError{kUvEINVAL, "getaddrinfo"};
  // Windows receives nothing on a raw socket until it is bound: it always is
  // here (the wildcard when no address is given), with no port.
  if (bind(socket, reinterpret_cast<sockaddr*>(&address), length) == SOCKET_ERROR) return WsaError("bind");
  return SysError{};
}

}  // namespace

SysError OpenSocket(const Options& options, UniqueSocket* owned, LPFN_WSARECVMSG* recvmsg) {
  if (SysError err = StartWinsock()) return err;
  // Windows has no SO_REUSEPORT (SO_REUSEADDR already lets sockets share a
  // port there), and pretending would hide a difference users rely on.
  if (options.reuse_port) return SysError{kUvENOTSUP, "setsockopt"};
  const bool ipv6 = options.ipv6;
  int family = ipv6 ? AF_INET6 : AF_INET;
  int type = options.raw ? SOCK_RAW : SOCK_DGRAM;
  int protocol = options.raw ? options.protocol : IPPROTO_UDP;
  owned->reset(WSASocketW(family, type, protocol, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT));
  SOCKET socket = owned->get();
  if (socket == INVALID_SOCKET) return WsaError("socket");
  if (options.reuse_addr && SetOption(socket, SOL_SOCKET, SO_REUSEADDR, 1)) return WsaError("setsockopt");
  // Windows defaults to IPv6-only, Linux to dual stack: always say which.
  // A raw IPv6 socket never sees IPv4.
  if (ipv6 && !options.raw && SetOption(socket, IPPROTO_IPV6, IPV6_V6ONLY, options.ipv6_only ? 1 : 0))
    return WsaError("setsockopt");
  if (options.recv_buffer_size > 0 && SetOption(socket, SOL_SOCKET, SO_RCVBUF, options.recv_buffer_size))
    return WsaError("setsockopt");
  if (EnableBoth(socket, ipv6, IP_PKTINFO, IPV6_PKTINFO)) return WsaError("setsockopt");
  // Receive coalescing (URO): the stack may fill one buffer with several
  // datagrams of one flow, up to this many bytes (a coalescing slot's room
  // less a UDP header, as msquic asks), and says their size in a
  // UDP_COALESCED_INFO control message (cmsg.cc). Windows 10 2004 and later;
  // older Windows and wine refuse the option (wine 8: WSAEINVAL). Then open
  // fails: the syscall names the option, and lib/socket.ts turns it into
  // ERR_DGRAM_RING_UNSUPPORTED (never a socket that silently does not coalesce).
  if (options.coalesce && SetOption(socket, IPPROTO_UDP, UDP_RECV_MAX_COALESCED_SIZE, kCoalescedBufferBytes - 8))
    return WsaError("setsockopt(UDP_RECV_MAX_COALESCED_SIZE)");
  if (options.ttl && EnableBoth(socket, ipv6, IP_HOPLIMIT, IPV6_HOPLIMIT)) return WsaError("setsockopt");
  if (options.tos && EnableBoth(socket, ipv6, IP_RECVTOS, IPV6_RECVTCLASS)) return WsaError("setsockopt");
  if (options.timestamp) {
    // Receive timestamps (Windows 10 1903+): QueryPerformanceCounter ticks in
    // an SO_TIMESTAMP message, which cmsg.cc turns into epoch time.
    TimestampingConfig config = {};
    config.flags = kTimestampingFlagRx;
    DWORD returned = 0;
    if (WSAIoctl(socket, SIO_TIMESTAMPING, &config, sizeof config, nullptr, 0, &returned, nullptr, nullptr) == SOCKET_ERROR)
      return WsaError("WSAIoctl(SIO_TIMESTAMPING)");  // lib/socket.ts names it unsupported
  }
  // An ICMP report about a datagram this socket sent would otherwise fail
  // the next receive. Best effort: the backend re-posts such receives anyway.
  SetIoctl(socket, SIO_UDP_CONNRESET, FALSE);
  SetIoctl(socket, SIO_UDP_NETRESET, FALSE);
  if (SysError err = Bind(socket, options)) return err;
  if (SysError err = JoinMulticastGroups(socket, options)) return err;
  GUID guid = WSAID_WSARECVMSG;
  DWORD returned = 0;
  if (WSAIoctl(socket, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, recvmsg, sizeof *recvmsg, &returned,
               nullptr, nullptr) == SOCKET_ERROR)
    return WsaError("WSAIoctl");
  return SysError{};
}

}  // namespace dgram_ring
