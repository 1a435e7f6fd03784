// Sending from the ring's own socket (same port): stream.send(),
// datagram.reply() and stream.sender() (lib/sender.ts). Everything queued in
// one JS turn crosses into native once, as a table of rows (one a datagram)
// over one payload buffer, and goes out in as few system calls as the OS
// allows: one sendmmsg for up to kMaxSendMessages messages on Linux, and
// runs of same-size datagrams to one destination from one source as one
// UDP GSO message (UDP_SEGMENT), while the kernel takes it.
//
// Threads: every function here runs on the JS loop thread. The receive
// thread of `thread: true` mode never sends.
#ifndef DGRAM_RING_SEND_H_
#define DGRAM_RING_SEND_H_

#include <cstddef>
#include <cstdint>
#include <functional>

struct uv_loop_s;
struct uv_poll_s;

namespace dgram_ring {

// Words (uint32) of one row of the send table, as lib/sender.ts writes them.
// Addresses are in network byte order, 4 or 16 bytes (the flags say which).
enum SendWord : uint32_t {
  kSendOffset = 0,     // payload: bytes from the start of the payload buffer
  kSendLength = 1,     // payload bytes
  kSendPort = 2,       // destination port
  kSendFlags = 3,      // SendFlag bits
  kSendInterface = 4,  // interface index to send on; 0 = the routing table's
  kSendAddress = 5,    // destination, 4 words
  kSendFrom = 9,       // source address (with kSendHasFrom), 4 words
  kSendResult = 13,    // written back: 0 sent, else a negative libuv-style errno
  kSendStride = 14,
};

enum SendFlag : uint32_t {
  kSendIPv6 = 1u << 0,     // the destination is 16 bytes (else 4)
  kSendHasFrom = 1u << 1,  // send from kSendFrom (IP_PKTINFO / IPV6_PKTINFO)
  kSendFromIPv6 = 1u << 2,  // the source is 16 bytes (else 4)
};

// Messages one sendmmsg takes at most (the kernel's UIO_MAXIOV).
constexpr uint32_t kMaxSendMessages = 1024;
// Datagrams one UDP GSO message carries at most (the kernel's
// UDP_MAX_SEGMENTS was 64 before Linux 6.9).
constexpr uint32_t kMaxGsoSegments = 64;

// One call's work: rows [start, start + count) of `table` (kSendStride words
// a row) over `payloads` (`payload_bytes` long; lib/sender.ts checked every
// row's range lies inside it).
struct SendBatch {
  uint32_t* table = nullptr;
  uint32_t start = 0;
  uint32_t count = 0;
  const uint8_t* payloads = nullptr;
  size_t payload_bytes = 0;
};

// What a socket's sends remember between calls.
struct SendState {
  bool ipv6_socket = false;
  // The kernel refused UDP_SEGMENT once (an older kernel, or a device without
  // checksum offload): every later datagram goes out on its own.
  bool gso_refused = false;
  uint64_t gso_messages = 0;  // messages sent with UDP_SEGMENT
  void* win_sendmsg = nullptr;  // Windows: WSASendMsg, from WSAIoctl once
};

// Sends the batch's rows in order, writing each one's kSendResult: 0 sent,
// or the error that describes that datagram (EACCES for a broadcast, EINVAL
// for a source that is not local, …; the others go on). Returns the rows
// done. Fewer than `count`: the socket's send buffer is full (EAGAIN) or the
// device queue is (ENOBUFS); the first row not done has that error in its
// kSendResult, and the caller sends it and the rest again once the socket
// is writable. Never blocks.
#ifdef _WIN32
uint32_t SendRows(uintptr_t socket, SendState* state, const SendBatch& batch);  // send_win.cc
#else
uint32_t SendRows(int fd, SendState* state, const SendBatch& batch);  // send_posix.cc
#endif

#ifndef _WIN32
// A uv_poll of its own on a socket that no other uv_poll watches (the
// io_uring backend's: its loop handle polls an eventfd), for
// Backend::WaitWritable. Loop thread.
class WritableWatch {
 public:
  WritableWatch() = default;
  WritableWatch(const WritableWatch&) = delete;
  WritableWatch& operator=(const WritableWatch&) = delete;
  ~WritableWatch();  // only once Close's `then` ran, or never started
  // Calls `ready` once, when `fd` is writable (or its poll failed). Returns
  // 0 or a negative libuv error.
  int Wait(uv_loop_s* loop, int fd, std::function<void()> ready);
  // Forgets a waiter without calling it (the socket is closing).
  void Stop();
  // Stops and closes the handle, then calls `then` (at once if none was made).
  void Close(std::function<void()> then);
  void SetRef(bool keep_alive);

 private:
  static void OnPoll(uv_poll_s* handle, int status, int events);
  uv_poll_s* poll_ = nullptr;
  std::function<void()> ready_;
  std::function<void()> closed_;
  bool ref_ = true;
};
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_SEND_H_
