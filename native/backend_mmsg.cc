// POSIX backend: a ring of receive buffers filled by recvmmsg (Linux) or a
// loop of recvmsg (other POSIX systems), on the loop thread, when uv_poll says
// the socket is readable. "Posted" here means offered to the next receive
// call: min(credits, ring size). With no credits the poll stops and the socket
// is not read, so the kernel's queue fills and its drop counter counts.
//
// Threads: every function here runs on the loop thread.
//
// Closing: a socket filter that drops everything is attached first (Linux),
// so what arrives from then on is dropped by the kernel and counted in its
// drop counter, and the queue holds exactly what had arrived. That is then
// drained into JS (kDrain: one batch a wake-up, so JS runs between batches)
// or read and counted as discarded (kDiscard: at once), and the socket is
// closed. No buffer is with the kernel between receive calls, so there is
// nothing to cancel.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef __linux__
#include <linux/filter.h>     // SO_ATTACH_FILTER
#include <linux/sock_diag.h>  // SK_MEMINFO_DROPS
#endif

#include "cmsg.h"
#include "drop_counter.h"
#include "faults.h"
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

// Errors that describe the moment (memory is short), not the socket: counted
// and reported, and the next readable event tries again.
bool IsTransientError(int err) { return err == ENOMEM || err == ENOBUFS; }

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
    if (closing_ || failed_ || poll_ == nullptr) return;
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

  // Only a draining close asks for wake-ups: one batch each.
  void OnWake() override {
    if (closing_ && mode_ == CloseMode::kDrain && !finishing_) DrainBatch();
  }

  BackendStats Stats() const override {
    BackendStats stats;
    stats.posted = Posted();
    stats.peak_posted = peak_posted_;
    stats.kernel_drops = KernelDrops();
    stats.discarded = discarded_;
    return stats;
  }

  void SetRef(bool keep_alive) override {
    if (poll_ == nullptr) return;
    if (keep_alive)
      uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    else
      uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  void Close(CloseMode mode, std::function<void()> done) override {
    if (closing_) {  // a discard while a drain is under way: finish now
      if (mode == CloseMode::kDiscard && mode_ == CloseMode::kDrain) {
        mode_ = CloseMode::kDiscard;
        if (!delivering_) Finish();
      }
      return;
    }
    closing_ = true;
    mode_ = mode;
    done_ = std::move(done);
    if (polling_) uv_poll_stop(poll_);
    polling_ = false;
    StopArrivals();
    if (!delivering_) ContinueClose();  // else ReadAvailable does, once Deliver returns
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
      if (count < 0 && IsTransientError(-count)) {
        sink_->Warn(SysError{count, kName});
        if (closing_) return ContinueClose();
        break;
      }
      if (count < 0) return Stop(SysError{count, kName});
      delivering_ = true;
      sink_->Deliver(completions_.data(), static_cast<size_t>(count));
      delivering_ = false;
      if (closing_) return ContinueClose();  // JS closed the socket from its batch handler
      if (failed_) return;
    }
    OnCredits();  // credits may have run out: stop polling until JS grants more
  }

  // After Close, once no delivery is under way.
  void ContinueClose() {
    if (mode_ == CloseMode::kDrain)
      sink_->Wake();  // DrainBatch, from the loop, so that JS runs first
    else
      Finish();
  }

  // Stops new datagrams from joining the queue: from now on the kernel drops
  // them, counting each in its drop counter (a filter's verdict counts there
  // as a full queue does). Elsewhere than Linux nothing stops them: the drain
  // is then bounded by what the receive buffer can hold.
  void StopArrivals() {
#ifdef __linux__
    sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
    sock_fprog program = {1, drop_all};
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) == 0) return;
#endif
    int bytes = 0;
    socklen_t length = sizeof bytes;
    getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, &length);
    // The smallest datagram still takes a few hundred bytes of receive buffer.
    closing_budget_ = std::max<int64_t>(ring_size_, bytes / 128);
  }

  // One batch of the drain to JS; the next on the next wake-up, until the
  // queue is empty. Delivery may re-enter Close (destroy() during close()).
  void DrainBatch() {
    int count = closing_budget_ > 0 ? Receive(ClosingBatch()) : 0;
    if (count <= 0) return Finish();  // empty (or failing): nothing more to deliver
    closing_budget_ -= count;
    delivering_ = true;
    sink_->Deliver(completions_.data(), static_cast<size_t>(count));
    delivering_ = false;
    if (mode_ == CloseMode::kDiscard) return Finish();
    sink_->Wake();
  }

  uint32_t ClosingBatch() const {
    return static_cast<uint32_t>(std::min<int64_t>(ring_size_, closing_budget_));
  }

  // Reads what the queue still holds and throws it away, counted; then reads
  // the drop counter one last time and closes the socket.
  void Finish() {
    if (finishing_) return;
    finishing_ = true;
    while (closing_budget_ > 0) {
      int count = Receive(ClosingBatch());
      if (count <= 0) break;
      discarded_ += static_cast<uint64_t>(count);
      closing_budget_ -= count;
    }
    KernelDrops();  // the last reading: from here on no datagram is ours
    fd_closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
      auto* self = static_cast<MmsgBackend*>(handle->data);
      delete reinterpret_cast<uv_poll_t*>(handle);
      self->poll_ = nullptr;
      ::close(self->fd_);
      self->fd_ = -1;
      self->done_();  // last: the binding may free this backend inside it
    });
  }

  // Fills completions_[0..n) and returns n, 0 when nothing is queued, or a
  // negative errno for an error that ends the ring.
  int Receive(uint32_t want) {
    for (;;) {
      int injected = 0;
      int count = Fault(FaultSite::kRecv, &injected) ? -injected : ReceiveBatch(want);
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

  // The kernel's drop counter, accumulated in 64 bits; -1 where the OS has
  // none. After the socket is closed, its last reading.
  int64_t KernelDrops() const {
#if defined(__linux__) && defined(SO_MEMINFO)
    if (!fd_closed_) {
      uint32_t meminfo[SK_MEMINFO_VARS] = {};
      socklen_t length = sizeof meminfo;
      if (getsockopt(fd_, SOL_SOCKET, SO_MEMINFO, meminfo, &length) == 0 &&
          length > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        drops_.Update(meminfo[SK_MEMINFO_DROPS]);
        has_drops_ = true;
      }
    }
#endif
    return has_drops_ ? static_cast<int64_t>(drops_.Total()) : -1;
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
  bool delivering_ = false;  // inside Sink::Deliver: the slots are JS's until it returns
  CloseMode mode_ = CloseMode::kDrain;
  bool finishing_ = false;   // Finish ran: the socket is being closed
  bool fd_closed_ = false;   // no more readings of the drop counter
  // Datagrams a close may still read: unbounded where a filter stops
  // arrivals, else what the receive buffer can hold.
  int64_t closing_budget_ = INT64_MAX;
  uint32_t peak_posted_ = 0;
  uint64_t discarded_ = 0;
  mutable DropCounter drops_;
  mutable bool has_drops_ = false;
  std::function<void()> done_;
};

}  // namespace

std::unique_ptr<Backend> NewMmsgBackend(Sink* sink, uv_loop_s* loop) {
  return std::make_unique<MmsgBackend>(sink, loop);
}

}  // namespace dgram_ring
