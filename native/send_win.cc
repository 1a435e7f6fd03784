// Windows sending (send.h): WSASendMsg (from WSAIoctl's extension pointer),
// one datagram a call, with IP_PKTINFO / IPV6_PKTINFO for a chosen source
// address and interface, as on POSIX. Non-overlapped: the call completes
// before it returns and queues nothing on the backend's completion port.
// Windows has no sendmmsg and no UDP_SEGMENT here (USO is not used): each
// datagram is its own call. WSAEWOULDBLOCK / WSAENOBUFS end the call; the
// caller (lib/sender.ts) retries on a timer, as Backend::WaitWritable is
// UV_ENOTSUP on iocp. Loop thread only.
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <cstring>

#include "send.h"
#include "sockaddr.h"
#include "win_errors.h"

namespace dgram_ring {

namespace {

constexpr size_t kControlBytes = WSA_CMSG_SPACE(sizeof(IN6_PKTINFO));

uint32_t* Row(const SendBatch& batch, uint32_t i) { return batch.table + static_cast<size_t>(i) * kSendStride; }

// The destination of row `r` as the socket's family wants it (an IPv4
// destination on an IPv6 socket was made v4-mapped by lib/sender.ts).
int WriteName(const uint32_t* r, sockaddr_storage* name) {
  return static_cast<int>(WriteSockaddr((r[kSendFlags] & kSendIPv6) != 0, reinterpret_cast<const uint8_t*>(r + kSendAddress),
                                           static_cast<uint16_t>(r[kSendPort]), name));
}

// Writes one control message holding `value` at `c`; returns the room it takes.
template <typename Value>
ULONG PutControl(WSACMSGHDR* c, int level, int type, const Value& value) {
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = WSA_CMSG_LEN(sizeof value);
  memcpy(WSA_CMSG_DATA(c), &value, sizeof value);
  return static_cast<ULONG>(WSA_CMSG_SPACE(sizeof value));
}

ULONG WriteControl(bool ipv6_socket, const uint32_t* r, char* control) {
  bool from = (r[kSendFlags] & kSendHasFrom) != 0;
  if (!from && r[kSendInterface] == 0) return 0;
  memset(control, 0, kControlBytes);
  auto* c = reinterpret_cast<WSACMSGHDR*>(control);
  if (ipv6_socket) {
    IN6_PKTINFO info{};
    if (from) memcpy(&info.ipi6_addr, r + kSendFrom, 16);
    info.ipi6_ifindex = r[kSendInterface];
    return PutControl(c, IPPROTO_IPV6, IPV6_PKTINFO, info);
  }
  IN_PKTINFO info{};
  if (from) memcpy(&info.ipi_addr, r + kSendFrom, 4);
  info.ipi_ifindex = r[kSendInterface];
  return PutControl(c, IPPROTO_IP, IP_PKTINFO, info);
}

}  // namespace

uint32_t SendRows(uintptr_t socket_value, SendState* state, const SendBatch& batch) {
  SOCKET socket = static_cast<SOCKET>(socket_value);
  auto fail_all = [&](int code) {
    for (uint32_t i = 0; i < batch.count; i++) Row(batch, batch.start + i)[kSendResult] = static_cast<uint32_t>(code);
    return batch.count;
  };
  if (batch.count == 0) return 0;
  if (socket == INVALID_SOCKET) return fail_all(kUvEBADF);
  if (state->win_sendmsg == nullptr) {
    GUID guid = WSAID_WSASENDMSG;
    LPFN_WSASENDMSG function = nullptr;
    DWORD returned = 0;
    if (WSAIoctl(socket, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &function, sizeof function,
                 &returned, nullptr, nullptr) == SOCKET_ERROR)
      return fail_all(TranslateError(WSAGetLastError()));
    state->win_sendmsg = reinterpret_cast<void*>(function);
  }
  auto send_message = reinterpret_cast<LPFN_WSASENDMSG>(state->win_sendmsg);
  alignas(WSACMSGHDR) char control[kControlBytes];
  for (uint32_t i = batch.start; i < batch.start + batch.count; i++) {
    uint32_t* r = Row(batch, i);
    sockaddr_storage name;
    WSABUF buffer;
    buffer.buf = const_cast<char*>(reinterpret_cast<const char*>(batch.payloads + r[kSendOffset]));
    buffer.len = r[kSendLength];
    WSAMSG message{};
    message.name = reinterpret_cast<sockaddr*>(&name);
    message.namelen = WriteName(r, &name);
    message.lpBuffers = &buffer;
    message.dwBufferCount = 1;
    ULONG control_length = WriteControl(state->ipv6_socket, r, control);
    message.Control.buf = control_length > 0 ? control : nullptr;
    message.Control.len = control_length;
    DWORD sent = 0;
    if (send_message(socket, &message, 0, &sent, nullptr, nullptr) == 0) {
      r[kSendResult] = 0;
      continue;
    }
    DWORD error = WSAGetLastError();
    r[kSendResult] = static_cast<uint32_t>(TranslateError(error));
    if (error == WSAEWOULDBLOCK || error == WSAENOBUFS) return i - batch.start;  // the caller waits, then sends it again
  }
  return batch.count;
}

}  // namespace dgram_ring
