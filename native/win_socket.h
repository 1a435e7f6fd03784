// The iocp backend's socket: owned Winsock and kernel handles, and opening
// the socket as Options say (overlapped, options set, bound), with the
// WSARecvMsg pointer that receives on it. Called on the loop thread.
#ifndef DGRAM_RING_WIN_SOCKET_H_
#define DGRAM_RING_WIN_SOCKET_H_

#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>

#include "ring.h"

namespace dgram_ring {

class UniqueSocket {
 public:
  UniqueSocket() = default;
  UniqueSocket(const UniqueSocket&) = delete;
  UniqueSocket& operator=(const UniqueSocket&) = delete;
  ~UniqueSocket() { reset(); }
  SOCKET get() const { return socket_; }
  void reset(SOCKET socket = INVALID_SOCKET) {
    if (socket_ != INVALID_SOCKET) closesocket(socket_);
    socket_ = socket;
  }

 private:
  SOCKET socket_ = INVALID_SOCKET;
};

class UniqueHandle {
 public:
  UniqueHandle() = default;
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }
  HANDLE get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  void reset(HANDLE handle = nullptr) {
    if (handle_ != nullptr) CloseHandle(handle_);
    handle_ = handle;
  }

 private:
  HANDLE handle_ = nullptr;
};

// Loop thread. Starts Winsock (once a process), creates an overlapped socket
// in `socket`, sets it up as `options` say (pktinfo on, ICMP reports off),
// binds it, and reads the WSARecvMsg extension pointer into `recvmsg`.
SysError OpenSocket(const Options& options, UniqueSocket* socket, LPFN_WSARECVMSG* recvmsg);

}  // namespace dgram_ring

#endif  // DGRAM_RING_WIN_SOCKET_H_
