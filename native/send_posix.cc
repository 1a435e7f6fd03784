// POSIX sending (send.h): sendmmsg on Linux (sendmsg a datagram elsewhere),
// IP_PKTINFO / IPV6_PKTINFO for a chosen source address and interface, UDP
// GSO for runs of same-size datagrams to one destination from one source.
// Loop thread only.
#define __APPLE_USE_RFC_3542 1  // macOS: IPV6_PKTINFO and in6_pktinfo as RFC 3542 has them
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "send.h"
#include "sockaddr.h"

#ifdef __linux__
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#endif

namespace dgram_ring {

namespace {

// The largest datagram one GSO segment may be: what fits an Ethernet MTU
// (1500) after the headers. A bigger segment would need fragmenting, which
// the kernel refuses for GSO (EINVAL): such datagrams go out one by one.
constexpr uint32_t kMaxGsoSegment4 = 1500 - 20 - 8;
constexpr uint32_t kMaxGsoSegment6 = 1500 - 40 - 8;
// A GSO message's payload at most (one IPv4 UDP datagram's limit).
constexpr uint32_t kMaxGsoBytes = 65507;

// Control bytes one message needs at most: a pktinfo and a UDP_SEGMENT.
constexpr size_t kControlBytes = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t));

const uint32_t* Row(const SendBatch& batch, uint32_t i) { return batch.table + static_cast<size_t>(i) * kSendStride; }
uint32_t* MutableRow(const SendBatch& batch, uint32_t i) { return batch.table + static_cast<size_t>(i) * kSendStride; }

// Same destination, same source and interface: one GSO message may carry both.
bool SameRoute(const uint32_t* a, const uint32_t* b) {
  return a[kSendPort] == b[kSendPort] && a[kSendFlags] == b[kSendFlags] && a[kSendInterface] == b[kSendInterface] &&
         memcmp(a + kSendAddress, b + kSendAddress, 16) == 0 &&
         ((a[kSendFlags] & kSendHasFrom) == 0 || memcmp(a + kSendFrom, b + kSendFrom, 16) == 0);
}

// The destination of row `r` as the socket's family wants it (an IPv4
// destination on an IPv6 socket was made v4-mapped by lib/sender.ts).
socklen_t WriteName(const uint32_t* r, sockaddr_storage* name) {
  return static_cast<socklen_t>(WriteSockaddr((r[kSendFlags] & kSendIPv6) != 0, reinterpret_cast<const uint8_t*>(r + kSendAddress),
                                           static_cast<uint16_t>(r[kSendPort]), name));
}

// Writes one control message holding `value` at `c`; returns the room it takes.
template <typename Value>
size_t PutControl(cmsghdr* c, int level, int type, const Value& value) {
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(sizeof value);
  memcpy(CMSG_DATA(c), &value, sizeof value);
  return CMSG_SPACE(sizeof value);
}

// Writes the control messages of a message for row `r` (`segment` > 0: UDP
// GSO of that size) into `control`; returns their length.
size_t WriteControl(bool ipv6_socket, const uint32_t* r, uint16_t segment, uint8_t* control) {
  memset(control, 0, kControlBytes);
  msghdr header{};
  header.msg_control = control;
  header.msg_controllen = kControlBytes;
  cmsghdr* c = CMSG_FIRSTHDR(&header);
  size_t used = 0;
  bool from = (r[kSendFlags] & kSendHasFrom) != 0;
  if (from || r[kSendInterface] != 0) {
    if (ipv6_socket) {
      in6_pktinfo info{};
      if (from) memcpy(&info.ipi6_addr, r + kSendFrom, 16);
      info.ipi6_ifindex = r[kSendInterface];
      used += PutControl(c, IPPROTO_IPV6, IPV6_PKTINFO, info);
    } else {
#if defined(IP_PKTINFO)
      in_pktinfo info{};
      if (from) memcpy(&info.ipi_spec_dst, r + kSendFrom, 4);
      info.ipi_ifindex = static_cast<int>(r[kSendInterface]);
      used += PutControl(c, IPPROTO_IP, IP_PKTINFO, info);
#endif
    }
    c = reinterpret_cast<cmsghdr*>(control + used);
  }
#ifdef __linux__
  if (segment > 0) used += PutControl(c, SOL_UDP, UDP_SEGMENT, segment);
#endif
  return used;
}

bool Blocks(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

// What the kernel says when it will not do UDP GSO for a message that is
// fine without it (no UDP_SEGMENT before Linux 4.18: ENOPROTOOPT; a device
// without checksum offload: EIO; limits: EINVAL).
bool MayBeGsoRefusal(int err) { return err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP; }

// One message of a call under construction: the rows it carries.
struct Message {
  uint32_t first = 0;
  uint32_t rows = 1;
};

class Sender {
 public:
  Sender(int fd, SendState* state, const SendBatch& batch) : fd_(fd), state_(state), batch_(batch) {
    uint32_t n = std::min(batch.count, kMaxSendMessages);
    names_.resize(n);
    controls_.resize(n * kControlBytes);
    iovecs_.resize(std::min<uint32_t>(batch.count, kMaxSendMessages * kMaxGsoSegments));
    messages_.resize(n);
    headers_.resize(n);
  }

  uint32_t Run() {
    uint32_t end = batch_.start + batch_.count;
    uint32_t i = batch_.start;
    bool plain_next = false;  // the message at `i` failed as GSO: try it plain once
    while (i < end) {
      uint32_t built = Build(i, end, plain_next);
      int err = 0;
      int sent = Call(built, &err);
      if (sent > 0) {
        if (plain_next) state_->gso_refused = true;  // plain went where GSO did not
        plain_next = false;
        for (int m = 0; m < sent; m++) {
          for (uint32_t k = 0; k < messages_[m].rows; k++) MutableRow(batch_, messages_[m].first + k)[kSendResult] = 0;
          if (messages_[m].rows > 1) state_->gso_messages++;
        }
        i = messages_[sent - 1].first + messages_[sent - 1].rows;
        continue;
      }
      if (err == EINTR) continue;
      if (Blocks(err)) {
        MutableRow(batch_, i)[kSendResult] = static_cast<uint32_t>(-err);
        return i - batch_.start;
      }
      if (messages_[0].rows > 1 && MayBeGsoRefusal(err)) {
        plain_next = true;  // the same rows again, one datagram a message
        continue;
      }
      plain_next = false;
      MutableRow(batch_, i)[kSendResult] = static_cast<uint32_t>(-err);  // this datagram's own error
      i++;
    }
    return batch_.count;
  }

 private:
  // Fills messages_ from row `i` on; returns how many messages. `plain_first`:
  // the first message carries one row.
  uint32_t Build(uint32_t i, uint32_t end, bool plain_first) {
    uint32_t m = 0;
    size_t iov = 0;
    while (i < end && m < messages_.size()) {
      const uint32_t* r = Row(batch_, i);
      uint32_t rows = 1;
      uint32_t length = r[kSendLength];
      bool gso = !state_->gso_refused && !(m == 0 && plain_first) && length > 0 &&
                 length <= ((r[kSendFlags] & kSendIPv6) ? kMaxGsoSegment6 : kMaxGsoSegment4);
#ifndef __linux__
      gso = false;
#endif
      if (gso) {
        uint32_t bytes = length;
        while (i + rows < end && rows < kMaxGsoSegments && iov + rows < iovecs_.size()) {
          const uint32_t* next = Row(batch_, i + rows);
          if (next[kSendLength] != length || !SameRoute(r, next) || bytes + length > kMaxGsoBytes) break;
          bytes += length;
          rows++;
        }
      }
      if (iov + rows > iovecs_.size()) break;
      for (uint32_t k = 0; k < rows; k++) {
        const uint32_t* row = Row(batch_, i + k);
        iovecs_[iov + k].iov_base = const_cast<uint8_t*>(batch_.payloads + row[kSendOffset]);
        iovecs_[iov + k].iov_len = row[kSendLength];
      }
      msghdr& h = headers_[m];
      memset(&h, 0, sizeof h);
      h.msg_name = &names_[m];
      h.msg_namelen = WriteName(r, &names_[m]);
      h.msg_iov = &iovecs_[iov];
      h.msg_iovlen = rows;
      uint8_t* control = &controls_[m * kControlBytes];
      size_t control_length = WriteControl(state_->ipv6_socket, r, rows > 1 ? static_cast<uint16_t>(length) : 0, control);
      h.msg_control = control_length > 0 ? control : nullptr;
      h.msg_controllen = control_length;
      messages_[m].first = i;
      messages_[m].rows = rows;
      iov += rows;
      i += rows;
      m++;
    }
    return m;
  }

  // Sends `count` built messages: how many went (> 0), or 0 with *err.
  int Call(uint32_t count, int* err) {
#ifdef __linux__
    std::vector<mmsghdr>& v = mmsg_;
    v.resize(count);
    for (uint32_t m = 0; m < count; m++) {
      v[m].msg_hdr = headers_[m];
      v[m].msg_len = 0;
    }
    int sent = sendmmsg(fd_, v.data(), count, MSG_DONTWAIT);
    if (sent > 0) return sent;
    *err = sent == 0 ? EAGAIN : errno;
    return 0;
#else
    uint32_t sent = 0;
    for (; sent < count; sent++) {
      if (sendmsg(fd_, &headers_[sent], MSG_DONTWAIT) < 0) {
        if (sent > 0) return static_cast<int>(sent);
        *err = errno;
        return 0;
      }
    }
    return static_cast<int>(sent);
#endif
  }

  int fd_;
  SendState* state_;
  const SendBatch& batch_;
  std::vector<sockaddr_storage> names_;
  std::vector<uint8_t> controls_;
  std::vector<iovec> iovecs_;
  std::vector<Message> messages_;
  std::vector<msghdr> headers_;
#ifdef __linux__
  std::vector<mmsghdr> mmsg_;
#endif
};

}  // namespace

uint32_t SendRows(int fd, SendState* state, const SendBatch& batch) {
  if (batch.count == 0) return 0;
  if (fd < 0) {
    for (uint32_t i = 0; i < batch.count; i++) MutableRow(batch, batch.start + i)[kSendResult] = static_cast<uint32_t>(-EBADF);
    return batch.count;
  }
  Sender sender(fd, state, batch);
  return sender.Run();
}

// ---- WritableWatch ----------------------------------------------------------

WritableWatch::~WritableWatch() {
  // Close ran (poll_ is freed in its callback), or no handle was ever made.
}

int WritableWatch::Wait(uv_loop_s* loop, int fd, std::function<void()> ready) {
  if (closed_ || fd < 0) return UV_EBADF;
  if (poll_ == nullptr) {
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      return rc;
    }
    poll_->data = this;
    if (!ref_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  int rc = uv_poll_start(poll_, UV_WRITABLE, OnPoll);
  if (rc != 0) return rc;
  ready_ = std::move(ready);
  return 0;
}

void WritableWatch::OnPoll(uv_poll_s* handle, int /*status*/, int /*events*/) {
  auto* self = static_cast<WritableWatch*>(handle->data);
  uv_poll_stop(handle);
  std::function<void()> ready = std::move(self->ready_);
  self->ready_ = nullptr;
  if (ready) ready();  // the caller's next send says what a failed poll meant
}

void WritableWatch::Stop() {
  ready_ = nullptr;
  if (poll_ != nullptr) uv_poll_stop(poll_);
}

void WritableWatch::Close(std::function<void()> then) {
  Stop();
  if (poll_ == nullptr) {
    closed_ = [] {};
    return then();
  }
  closed_ = std::move(then);
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
    auto* self = static_cast<WritableWatch*>(handle->data);
    delete reinterpret_cast<uv_poll_t*>(handle);
    self->poll_ = nullptr;
    std::function<void()> then = std::move(self->closed_);
    self->closed_ = [] {};
    then();  // last: may free this watch's owner
  });
}

void WritableWatch::SetRef(bool keep_alive) {
  ref_ = keep_alive;
  if (poll_ == nullptr) return;
  if (keep_alive)
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  else
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
}

}  // namespace dgram_ring
