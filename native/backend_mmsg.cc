// POSIX backend: a ring of receive buffers filled by recvmmsg (Linux) or a
// loop of recvmsg (other POSIX systems), on the loop thread, when uv_poll says
// the socket is readable. "Posted" here means offered to the next receive
// call: min(credits, ring size). With no credits the poll stops and the socket
// is not read, so the kernel's queue fills and its drop counter counts.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef __linux__
#include <linux/sock_diag.h>  // SK_MEMINFO_DROPS
#endif

#include "cmsg.h"
#include "ring.h"
#include "sockaddr.h"

namespace dgram_ring {

namespace {

// Receive calls per readable event at most, so one busy socket cannot starve
// the rest of the loop.
constexpr int kMaxReadsPerEvent = 16;

SysError Errno(const char* syscall) { return SysError{-errno, syscall}; }

// Errors that describe one earlier packet (ICMP reported on the socket), not
// the socket: the ring goes on.
bool IsPerPacketError(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
         err == ENETDOWN || err == ENETRESET;
}

class MmsgBackend final : public Backend {
 public:
  MmsgBackend(Sink* sink, uv_loop_t* loop) : sink_(sink), loop_(loop) {}

  ~MmsgBackend() override {
    // Only reached with no poll handle open: Open failed or Close finished.
    if (fd_ >= 0) ::close(fd_);
    free(buffers_);
  }

  const char* Name() const override { return kName; }

  SysError Open(const Options& options) override {
    ipv6_ = options.ipv6;
    ring_size_ = options.ring_size;
    buffer_size_ = options.buffer_size;
    if (SysError err = OpenSocket(options)) return err;
    if (SysError err = AllocateRing()) return err;
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop_, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      return SysError{rc, "uv_poll_init"};
    }
    poll_->data = this;
    return SysError{};
  }

  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const override {
    sockaddr_storage name;
    socklen_t length = sizeof name;
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&name), &length) < 0) return Errno("getsockname");
    if (!ReadSockaddr(name, length, addr, family, port)) return SysError{-EAFNOSUPPORT, "getsockname"};
    return SysError{};
  }

  void OnCredits() override {
    if (closing_ || failed_) return;
    uint32_t posted = Posted();
    peak_posted_ = std::max(peak_posted_, posted);
    if (posted > 0 && !polling_) {
      int rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (rc != 0) return Stop(SysError{rc, "uv_poll_start"});
      polling_ = true;
    } else if (posted == 0 && polling_) {
      uv_poll_stop(poll_);
      polling_ = false;
    }
  }

  void OnWake() override {}  // everything happens on the loop thread already

  BackendStats Stats() const override {
    BackendStats stats;
    stats.posted = Posted();
    stats.peak_posted = peak_posted_;
    stats.kernel_drops = fd_ >= 0 ? KernelDrops() : final_drops_;
    return stats;
  }

  void Close(std::function<void()> done) override {
    closing_ = true;
    done_ = std::move(done);
    if (polling_) uv_poll_stop(poll_);
    polling_ = false;
    // recvmmsg is synchronous: no buffer is with the kernel between calls, so
    // closing the handle is all the cancelling there is.
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
      auto* self = static_cast<MmsgBackend*>(handle->data);
      delete reinterpret_cast<uv_poll_t*>(handle);
      self->poll_ = nullptr;
      self->final_drops_ = self->KernelDrops();
      ::close(self->fd_);
      self->fd_ = -1;
      self->done_();
    });
  }

 private:
  // The backend's name is also the receive call it makes.
  static constexpr const char* kName =
#ifdef __linux__
      "recvmmsg";
#else
      "recvmsg";
#endif

  uint32_t Posted() const {
    if (closing_ || failed_) return 0;
    return std::min(sink_->Credits(), ring_size_);
  }

  SysError OpenSocket(const Options& options) {
    int family = ipv6_ ? AF_INET6 : AF_INET;
    int type = options.raw ? SOCK_RAW : SOCK_DGRAM;
    int protocol = options.raw ? options.protocol : 0;
#ifdef SOCK_CLOEXEC
    fd_ = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd_ < 0) return Errno("socket");
#else
    fd_ = socket(family, type, protocol);
    if (fd_ < 0) return Errno("socket");
    if (fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK) < 0) return Errno("fcntl");
    if (fcntl(fd_, F_SETFD, FD_CLOEXEC) < 0) return Errno("fcntl");
#endif
    int on = 1;
    if (options.reuse_addr && setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
      return Errno("setsockopt");
    if (options.reuse_port) {
#ifdef SO_REUSEPORT
      if (setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) return Errno("setsockopt");
#else
      return SysError{-ENOTSUP, "setsockopt"};
#endif
    }
    if (ipv6_ && !options.raw) {  // a raw IPv6 socket never sees IPv4
      int only = options.ipv6_only ? 1 : 0;
      if (setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only) < 0) return Errno("setsockopt");
    }
    if (options.recv_buffer_size > 0) SetReceiveBuffer(options.recv_buffer_size);
    int rc = EnableControlMessages(fd_, ipv6_);
    if (rc < 0) return SysError{rc, "setsockopt"};
    return Bind(options);
  }

  // SO_RCVBUFFORCE passes the rmem_max cap when we may (CAP_NET_ADMIN); users
  // who ask for a large buffer mean it.
  void SetReceiveBuffer(int bytes) {
#ifdef SO_RCVBUFFORCE
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) return;
#endif
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  SysError Bind(const Options& options) {
    sockaddr_storage address;
    int length = 0;
    if (!ResolveBindAddress(options, &address, &length)) return SysError{-EINVAL, "getaddrinfo"};
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), static_cast<socklen_t>(length)) < 0) return Errno("bind");
    return SysError{};
  }

  SysError AllocateRing() {
    control_size_ = ControlBufferSize();
    size_t slot_bytes = static_cast<size_t>(buffer_size_) + control_size_;
    buffers_ = static_cast<uint8_t*>(malloc(slot_bytes * ring_size_));
    if (buffers_ == nullptr) return SysError{-ENOMEM, "malloc"};
    names_.resize(ring_size_);
    iovecs_.resize(ring_size_);
    completions_.resize(ring_size_);
#ifdef __linux__
    messages_.resize(ring_size_);
#endif
    for (uint32_t i = 0; i < ring_size_; i++) {
      iovecs_[i].iov_base = buffers_ + i * slot_bytes;
      iovecs_[i].iov_len = buffer_size_;
    }
    return SysError{};
  }

  uint8_t* Control(uint32_t slot) const {
    return static_cast<uint8_t*>(iovecs_[slot].iov_base) + buffer_size_;
  }

  void PrepareHeader(msghdr* header, uint32_t slot) {
    memset(header, 0, sizeof *header);
    header->msg_name = &names_[slot];
    header->msg_namelen = sizeof names_[slot];
    header->msg_iov = &iovecs_[slot];
    header->msg_iovlen = 1;
    header->msg_control = Control(slot);
    header->msg_controllen = control_size_;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<MmsgBackend*>(handle->data);
    if (status < 0) return self->Stop(SysError{status, "uv_poll"});
    self->ReadAvailable();
  }

  void ReadAvailable() {
    for (int round = 0; round < kMaxReadsPerEvent; round++) {
      uint32_t want = Posted();
      if (want == 0) break;
      int count = Receive(want);
      if (count == 0) break;
      if (count < 0) return Stop(SysError{count, kName});
      sink_->Deliver(completions_.data(), static_cast<size_t>(count));
      if (closing_ || failed_) return;
    }
    OnCredits();  // credits may have run out: stop polling until JS grants more
  }

  // Fills completions_[0..n) and returns n, 0 when nothing is queued, or a
  // negative errno for an error that ends the ring.
  int Receive(uint32_t want) {
    for (;;) {
      int count = ReceiveBatch(want);
      if (count >= 0) return count;
      if (-count == EAGAIN || -count == EWOULDBLOCK) return 0;
      if (-count == EINTR || IsPerPacketError(-count)) continue;
      return count;
    }
  }

#ifdef __linux__
  int ReceiveBatch(uint32_t want) {
    for (uint32_t i = 0; i < want; i++) PrepareHeader(&messages_[i].msg_hdr, i);
    int count = recvmmsg(fd_, messages_.data(), want, MSG_DONTWAIT, nullptr);
    if (count < 0) return -errno;
    for (int i = 0; i < count; i++) Complete(i, messages_[i].msg_hdr, messages_[i].msg_len);
    return count;
  }
#else
  // One datagram a call, but still handed to JS as one batch.
  int ReceiveBatch(uint32_t want) {
    uint32_t count = 0;
    for (; count < want; count++) {
      msghdr header;
      PrepareHeader(&header, count);
      ssize_t length = recvmsg(fd_, &header, MSG_DONTWAIT);
      if (length < 0) return count > 0 ? static_cast<int>(count) : -errno;
      Complete(count, header, static_cast<size_t>(length));
    }
    return static_cast<int>(count);
  }
#endif

  void Complete(uint32_t slot, const msghdr& header, size_t length) {
    Completion& out = completions_[slot];
    out.data = static_cast<const uint8_t*>(iovecs_[slot].iov_base);
    out.length = static_cast<uint32_t>(std::min<size_t>(length, buffer_size_));
    out.flags = 0;
    out.interface_index = 0;
    if (header.msg_flags & MSG_TRUNC) out.flags |= kTruncated;
    if (header.msg_flags & MSG_CTRUNC) out.flags |= kControlTruncated;
    int family = 4;
    if (ReadSockaddr(names_[slot], header.msg_namelen, out.remote_addr, &family, &out.remote_port) && family == 6)
      out.flags |= kRemoteIPv6;
    DecodeControl(Control(slot), header.msg_controllen, ipv6_, &out);
  }

  int64_t KernelDrops() const {
#if defined(__linux__) && defined(SO_MEMINFO)
    uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t length = sizeof meminfo;
    if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 &&
        length > SK_MEMINFO_DROPS * sizeof(uint32_t))
      return meminfo[SK_MEMINFO_DROPS];
#endif
    return -1;
  }

  void Stop(SysError error) {
    failed_ = true;
    if (polling_) uv_poll_stop(poll_);
    polling_ = false;
    sink_->Fail(error);
  }

  Sink* const sink_;
  uv_loop_t* const loop_;
  int fd_ = -1;
  bool ipv6_ = false;
  uint32_t ring_size_ = 0;
  uint32_t buffer_size_ = 0;
  size_t control_size_ = 0;
  uint8_t* buffers_ = nullptr;  // ring_size_ slots: payload, then control bytes
  std::vector<sockaddr_storage> names_;
  std::vector<iovec> iovecs_;
#ifdef __linux__
  std::vector<mmsghdr> messages_;
#endif
  std::vector<Completion> completions_;
  uv_poll_t* poll_ = nullptr;  // on the heap: libuv frees it only in its close callback
  bool polling_ = false;
  bool closing_ = false;
  bool failed_ = false;
  uint32_t peak_posted_ = 0;
  int64_t final_drops_ = -1;
  std::function<void()> done_;
};

}  // namespace

std::unique_ptr<Backend> NewMmsgBackend(Sink* sink, uv_loop_s* loop) {
  return std::make_unique<MmsgBackend>(sink, loop);
}

}  // namespace dgram_ring
