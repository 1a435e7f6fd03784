// io_uring backend (Linux 6.0+): one multishot IORING_OP_RECVMSG with
// IOSQE_BUFFER_SELECT over a provided-buffer ring (uring.h). The kernel fills
// provided buffers as datagrams arrive, also while JavaScript runs: no
// receive call per batch, and no receive thread (Options::thread is ignored).
//
// Credits: "posted" is the buffers in the provided-buffer ring, at most
// min(credits, ring size) less what is completed and not yet delivered. With
// none left the multishot ends (-ENOBUFS, no IORING_CQE_F_MORE), the socket
// is not read and the kernel's queue fills and counts its drops; it is armed
// again when credits return. A lower grant takes buffers back: the multishot
// is cancelled and the buffer ring emptied (unregistered and registered
// again) once its last completion is in. The provided-buffer ring holds at
// most 32768 buffers (the kernel's limit): the ring has that many at most.
//
// Completions are reaped on the loop thread when the eventfd registered with
// the ring is readable (uv_poll): every completion there is taken, and those
// credits allow are delivered as one batch; the rest are held (completed,
// in order) until credits come.
//
// A buffer is always in exactly one place: free (ours), in the buffer ring
// (the kernel may fill it), completed and not yet reaped (its CQE is in the
// completion queue), held (reaped, waiting for credits) or being delivered
// (inside Sink::Deliver). Only free buffers are given to the kernel; a
// delivered one is free once Deliver has returned, a discarded one at once.
//
// Closing (ownership): arrivals are stopped first (posix_socket.h: a filter
// that drops everything, counted by the kernel) and the multishot is
// cancelled (IORING_OP_ASYNC_CANCEL). Its last completion comes
// asynchronously: until it is reaped the kernel may still fill provided
// buffers, so nothing is freed; reaping goes on at each eventfd readiness
// (a loop handle: it works at environment teardown, where Sink::Wake does
// not). What completes meanwhile is delivered (kDrain, one batch a wake-up)
// or counted as discarded (kDiscard). Once the last completion is in, no
// buffer is with the kernel: the buffer ring is unregistered, what the
// socket's queue still holds is read with plain recvmsg into our own buffers
// and delivered or discarded as recvmmsg does, and then the socket is closed,
// the rings unmapped, the io_uring and eventfd closed, and `done` called.
//
// Payload memory (slab.h): a buffer gets its memory when it leaves the free
// list (given to the kernel, or to a recvmsg while closing), cut in order out
// of a slab, with a reference to it; it gives both back when it is free again
// (delivered, discarded, taken back). A batch whose buffers share a slab can
// be lent to JS as it is: the kernel's copy is the only one.
//
// Coalescing (Options::coalesce, UDP_GRO): each buffer has room for 64 KiB
// of payload, and a buffer holding several datagrams is split (coalesce.h)
// when it is delivered or discarded, as recvmmsg does; credits become buffers
// by the datagrams a buffer held in the last delivery.
//
// Threads: every function here runs on the loop thread.
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "batch.h"
#include "cmsg.h"
#include "coalesce.h"
#include "posix_socket.h"
#include "ring.h"
#include "send.h"
#include "slab.h"
#include "sockaddr.h"
#include "uring.h"

namespace dgram_ring {

namespace {

constexpr const char* kName = "io_uring";
constexpr uint64_t kReceiveTag = 1;  // user_data of the multishot receive
constexpr uint64_t kCancelTag = 2;   // user_data of its cancellation
constexpr uint16_t kGroup = 0;       // the buffer group of the provided-buffer ring
// Submissions are entered at once, one or two at a time.
constexpr uint32_t kSubmissionEntries = 4;
// Completions besides one a buffer: the multishot's end and a cancellation.
constexpr uint32_t kSpareCompletions = 4;

// A buffer as the kernel fills it for multishot recvmsg: the header, the
// source address (room for IPv6), the control messages, the payload.
constexpr size_t kNameBytes = sizeof(sockaddr_in6);
constexpr size_t kNameOffset = sizeof(io_uring_recvmsg_out);

uint32_t PowerOfTwoAtLeast(uint32_t n) {
  uint32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

class UringBackend final : public Backend {
 public:
  UringBackend(Sink* sink, uv_loop_t* loop) : sink_(sink), loop_(loop) {}

  ~UringBackend() override {
    // Only reached with no poll handle open and nothing armed: Open failed
    // (never armed) or Close finished. The ring closes before the buffers go.
    if (fd_ >= 0) ::close(fd_);
    buffer_ring_.Unregister(ring_);
    ring_.Close();
    if (event_fd_ >= 0) ::close(event_fd_);
    for (uint32_t id = 0; id < slabs_.size(); id++) ReleaseMemory(static_cast<uint16_t>(id));
  }

  const char* Name() const override { return kName; }

  SysError Open(const Options& options) override {
    ipv6_ = options.ipv6;
    send_state_.ipv6_socket = options.ipv6;
    buffer_size_ = options.buffer_size;
    coalesce_ = options.coalesce;
    slot_capacity_ = coalesce_ ? std::max(buffer_size_, kCoalescedBufferBytes) : buffer_size_;
    count_ = std::min(options.ring_size, BufferRing::kMaxEntries);
    if (SysError err = OpenPosixSocket(options, &fd_)) return err;
    if (SysError err = ring_.Setup(kSubmissionEntries, PowerOfTwoAtLeast(count_ + kSpareCompletions))) return err;
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (event_fd_ < 0) return SysError{-errno, "eventfd"};
    if (int rc = ring_.Register(IORING_REGISTER_EVENTFD, &event_fd_, 1)) return SysError{rc, "io_uring_register"};
    if (SysError err = AllocateBuffers(options)) return err;
    if (SysError err = buffer_ring_.Register(ring_, PowerOfTwoAtLeast(count_), kGroup)) return err;
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop_, poll_, event_fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      return SysError{rc, "uv_poll_init"};
    }
    poll_->data = this;
    return SysError{};
  }

  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const override {
    return SocketLocalAddress(fd_, addr, family, port);
  }

  void OnCredits() override {
    if (closing_ || failed_) return;
    // Completions held back for want of credits go first, from the loop
    // (not inside the grant() call that got here).
    if (held_ > 0 && sink_->Credits() > 0) sink_->Wake();
    Replenish();
  }

  void OnWake() override {
    if (closing_) {
      if (mode_ == CloseMode::kDrain) Advance();
      return;
    }
    if (failed_ || delivering_) return;
    DeliverHeld(sink_->Credits());
    if (closing_) return ContinueClose();  // JS closed the socket from its batch handler
    Replenish();
  }

  BackendStats Stats() const override {
    BackendStats stats;
    stats.posted = Posted();
    stats.peak_posted = peak_posted_;
    stats.kernel_drops = KernelDrops();
    stats.discarded = discarded_;
    stats.coalesced = coalesced_.coalesced();
    return stats;
  }

  int ReceiveBufferSize() const override { return SocketReceiveBufferSize(fd_); }

  void SetRef(bool keep_alive) override {
    SetPollRef(poll_, keep_alive);
    write_watch_.SetRef(keep_alive);
  }

  // Sending: plain sendmmsg on the socket, not through the ring. The loop
  // handle polls the eventfd, so the socket's own fd is free for a uv_poll
  // that waits for room (write_watch_).
  uint32_t Send(const SendBatch& batch) override { return SendRows(fd_, &send_state_, batch); }

  int WaitWritable(std::function<void()> ready) override {
    if (closing_) return UV_EBADF;
    return write_watch_.Wait(loop_, fd_, std::move(ready));
  }

  void Close(CloseMode mode, std::function<void()> done) override {
    if (closing_) {  // a discard while a drain is under way: finish without waiting for JS
      if (mode == CloseMode::kDiscard && mode_ == CloseMode::kDrain) {
        mode_ = CloseMode::kDiscard;
        if (!delivering_) Advance();
      }
      return;
    }
    closing_ = true;
    mode_ = mode;
    done_ = std::move(done);
    write_watch_.Stop();  // a send waiting for room: JS rejects it (closed)
    if (!StopArrivals(fd_)) closing_budget_ = std::max<int64_t>(count_, ReceiveBufferSize() / 128);
    if (!delivering_) ContinueClose();  // else the delivery under way does, once Deliver returns
  }

 private:
  // Buffers the kernel may fill now.
  uint32_t Posted() const { return closing_ || failed_ || !armed_ ? 0 : posted_; }

  uint8_t* Buffer(uint16_t id) const { return addresses_[id]; }

  // Gives free buffer `id` memory of its own, cut from the current slab.
  // False when memory is short.
  bool ProvideMemory(uint16_t id) {
    if (cutter_->Reserve(1) == 0) return false;
    addresses_[id] = cutter_->Unit(0);
    slabs_[id] = cutter_->Use(1);
    return true;
  }

  // Buffer `id` no longer needs its memory (it holds none after this).
  void ReleaseMemory(uint16_t id) {
    if (slabs_[id] == nullptr) return;
    slabs_[id]->Release();
    slabs_[id] = nullptr;
    addresses_[id] = nullptr;
  }

  // Buffer `id` is free again.
  void Free(uint16_t id) {
    ReleaseMemory(id);
    free_.push_back(id);
  }

  // How many of the `count` held completions from `first` on have buffers
  // cut from the same slab as the first (at least 1).
  uint32_t SameSlabRun(uint32_t first, uint32_t count) const {
    Slab* slab = slabs_[held_ids_[first]];
    uint32_t run = 1;
    while (run < count && slabs_[held_ids_[(first + run) % count_]] == slab) run++;
    return run;
  }
  size_t ControlOffset() const { return kNameOffset + kNameBytes; }
  size_t PayloadOffset() const { return ControlOffset() + control_size_; }

  SysError AllocateBuffers(const Options& options) {
    control_size_ = ControlBufferSize(options);
    buffer_bytes_ = (PayloadOffset() + slot_capacity_ + 7) & ~size_t{7};  // each buffer 8-byte aligned
    if (coalesce_) coalesced_.Resize(count_);
    cutter_ = std::make_unique<SlabCutter>(buffer_bytes_, count_);
    addresses_.assign(count_, nullptr);
    slabs_.assign(count_, nullptr);
    completions_.resize(count_);
    held_ids_.resize(count_);
    batch_.resize(count_);
    in_ring_.assign(count_, false);
    free_.reserve(count_);
    for (uint32_t id = count_; id > 0; id--) free_.push_back(static_cast<uint16_t>(id - 1));
    memset(&header_, 0, sizeof header_);
    header_.msg_namelen = kNameBytes;
    header_.msg_controllen = control_size_;
    return SysError{};
  }

  // ---- Receiving ----------------------------------------------------------

  // Gives free buffers to the kernel up to what credits allow, taking
  // buffers back if a lower grant allows fewer than it has, and arms the
  // multishot if it is not.
  void Replenish() {
    if (closing_ || failed_) return;
    uint32_t credits = sink_->Credits();
    uint32_t allowance = std::min(coalesce_ ? coalesced_.BuffersFor(credits) : credits, count_);
    uint32_t want = allowance > held_ ? allowance - held_ : 0;
    if (posted_ > want && !Retract()) return;  // once the multishot's last completion is in
    uint32_t added = 0;
    while (posted_ < want && !free_.empty()) {
      uint16_t id = free_.back();
      if (!ProvideMemory(id)) break;  // memory is short: fewer posted until it is not
      free_.pop_back();
      in_ring_[id] = true;
      buffer_ring_.Add(Buffer(id), static_cast<uint32_t>(buffer_bytes_), id);
      posted_++;
      added++;
    }
    if (added > 0) buffer_ring_.Publish();
    if (!armed_ && posted_ > 0) Arm();
    peak_posted_ = std::max(peak_posted_, Posted());
  }

  // Takes every buffer back from the kernel. False while the multishot may
  // still fill them: it is cancelled, and its last completion calls
  // Replenish again.
  bool Retract() {
    if (armed_) {
      Cancel();
      return false;
    }
    TakeBackAll();
    if (SysError err = buffer_ring_.Register(ring_, PowerOfTwoAtLeast(count_), kGroup)) {
      Stop(err);
      return false;
    }
    return true;
  }

  // Unregisters the buffer ring, which no request uses (the multishot is
  // over): every buffer in it is free again.
  void TakeBackAll() {
    buffer_ring_.Unregister(ring_);
    for (uint32_t id = 0; id < count_; id++) {
      if (!in_ring_[id]) continue;
      in_ring_[id] = false;
      Free(static_cast<uint16_t>(id));
    }
    posted_ = 0;
  }

  void Arm() {
    io_uring_sqe* sqe = ring_.NextSqe();
    if (sqe == nullptr) return Stop(SysError{-EBUSY, "io_uring_enter"});
    sqe->opcode = IORING_OP_RECVMSG;
    sqe->fd = fd_;
    sqe->addr = reinterpret_cast<uint64_t>(&header_);
    sqe->len = 1;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    sqe->user_data = kReceiveTag;
    if (SysError err = ring_.Submit()) return Stop(err);
    armed_ = true;
    cancel_sent_ = false;
    StartPoll();
  }

  // Asks the kernel to end the multishot; its last completion says when it has.
  void Cancel() {
    if (!armed_ || cancel_sent_) return;
    io_uring_sqe* sqe = ring_.NextSqe();
    if (sqe == nullptr) return;  // tried again at the next completion
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = kReceiveTag;
    sqe->user_data = kCancelTag;
    cancel_sent_ = !ring_.Submit();
  }

  void StartPoll() {
    if (polling_ || poll_ == nullptr) return;
    int rc = uv_poll_start(poll_, UV_READABLE, OnPoll);
    if (rc != 0) return Stop(SysError{rc, "uv_poll_start"});
    polling_ = true;
  }

  void StopPoll() {
    if (polling_) uv_poll_stop(poll_);
    polling_ = false;
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<UringBackend*>(handle->data);
    uint64_t count;
    (void)!read(self->event_fd_, &count, sizeof count);  // before reaping: a later CQE signals again
    if (self->closing_) return self->Advance();
    if (status < 0) return self->Stop(SysError{status, "uv_poll"});
    self->OnCompletions();
  }

  void OnCompletions() {
    int ended = Reap();
    DeliverHeld(sink_->Credits());
    if (closing_) return ContinueClose();  // JS closed the socket from its batch handler
    if (!armed_) StopPoll();  // nothing to wait for until Replenish arms it again
    if (failed_) return;
    if (ended != 0 && IsTransientError(-ended) && ended != -ENOBUFS) {
      sink_->Warn(SysError{ended, kName});
      if (closing_) return ContinueClose();  // closed from the warning handler
    } else if (ended != 0 && !EndsQuietly(-ended)) {
      return Stop(SysError{ended, kName});
    }
    Replenish();
  }

  // How the multishot may end without the ring failing: out of buffers
  // (ENOBUFS: the credits ran out), cancelled (a lower grant), or an error
  // that describes an earlier packet; it is armed again.
  static bool EndsQuietly(int err) {
    return err == ENOBUFS || err == ECANCELED || err == EINTR || err == EAGAIN || IsPerPacketError(err);
  }

  // Takes every completion off the queue: datagrams are held, in order, and
  // the multishot's end is noted. Returns the error it ended with, or 0.
  int Reap() {
    int ended = 0;
    while (const io_uring_cqe* cqe = ring_.PeekCqe()) {
      uint64_t tag = cqe->user_data;
      int res = cqe->res;
      uint32_t flags = cqe->flags;
      ring_.ConsumeCqe();
      if (tag != kReceiveTag) continue;  // the cancellation's own result: its target's end is what counts
      uint32_t id = flags >> IORING_CQE_BUFFER_SHIFT;
      if ((flags & IORING_CQE_F_BUFFER) && id < count_ && in_ring_[id]) {
        in_ring_[id] = false;
        posted_--;
        if (res >= 0)
          Hold(static_cast<uint16_t>(id), static_cast<size_t>(res));
        else
          Free(static_cast<uint16_t>(id));
      }
      if (!(flags & IORING_CQE_F_MORE)) {
        armed_ = false;
        ended = res < 0 ? res : 0;
      }
    }
    return ended;
  }

  // Buffer `id` holds a datagram laid out as multishot recvmsg writes it,
  // `total` bytes: decoded into the next held completion.
  void Hold(uint16_t id, size_t total) {
    uint32_t index = (head_ + held_) % count_;
    held_ids_[index] = id;
    held_++;
    const uint8_t* buffer = Buffer(id);
    io_uring_recvmsg_out header;
    memcpy(&header, buffer, sizeof header);
    Completion& out = completions_[index];
    out = Completion{};
    out.data = buffer + PayloadOffset();
    size_t room = total > PayloadOffset() ? total - PayloadOffset() : 0;
    out.length = static_cast<uint32_t>(std::min<size_t>({header.payloadlen, room, slot_capacity_}));
    if (header.flags & MSG_TRUNC) out.flags |= kTruncated;
    if (header.flags & MSG_CTRUNC) out.flags |= kControlTruncated;
    sockaddr_storage name;
    memset(&name, 0, sizeof name);
    size_t name_length = std::min<size_t>(header.namelen, kNameBytes);
    memcpy(&name, buffer + kNameOffset, name_length);
    int family = 4;
    if (ReadSockaddr(name, name_length, out.remote_addr, &family, &out.remote_port) && family == 6)
      out.flags |= kRemoteIPv6;
    // Every control message the socket asked for (pktinfo; UDP_GRO's segment
    // size once `coalesce` comes) is DecodeControl's to read.
    DecodeControl(buffer + ControlOffset(), std::min<size_t>(header.controllen, control_size_), ipv6_, &out);
    if (coalesce_) coalesced_.Filled(index, out, header.payloadlen);  // the wire length, as MSG_TRUNC reports it
  }

  // Hands the oldest held completions, at most `limit`, to JS: payloads worth
  // lending one batch for each run whose buffers were cut from one slab, so
  // that every batch can be lent its slab as it is (a slab holds a ring's
  // worth of buffers, so most full batches spanned two, and one batch of both
  // was copied: 150 KB a batch at 512 bytes, which could land in fresh mmaps
  // and fault every page); sparse ones, copied anyway, as one. Stops when JS
  // closes the socket or it fails meanwhile: closing goes on from there.
  void DeliverHeld(uint32_t limit) {
    uint32_t all = std::min(held_, limit);
    bool lend = all > 0 && WorthLendingSlots(completions_.data(), count_, head_, all, buffer_bytes_);
    bool closing = closing_;
    CloseMode mode = mode_;
    while (limit > 0 && held_ > 0) {
      uint32_t held = std::min(held_, limit);
      uint32_t count = lend ? SameSlabRun(head_, held) : held;
      DeliverRun(count);
      limit -= count;
      if (failed_ || closing_ != closing || mode_ != mode) return;
    }
  }

  // Hands the oldest `count` held completions (buffers of one slab) to JS as
  // one batch, then frees their buffers. They stop counting as held before
  // Deliver (their credits are used then: a grant made inside it must not see
  // them twice). Delivery may re-enter OnCredits and Close, never Hold: the
  // buffers and their completions stay untouched until it returns.
  void DeliverRun(uint32_t count) {
    uint32_t first = head_;
    const Completion* items = &completions_[first];
    if (first + count > count_) {  // wraps: one batch all the same
      for (uint32_t i = 0; i < count; i++) batch_[i] = completions_[(first + i) % count_];
      items = batch_.data();
    }
    Slab* slab = slabs_[held_ids_[first]];
    size_t datagrams = count;
    if (coalesce_) {
      items = coalesced_.Split(completions_.data(), first, count, buffer_size_, &datagrams);
      coalesced_.Received(count, datagrams);
    }
    head_ = (head_ + count) % count_;
    held_ -= count;
    delivering_ = true;
    sink_->Deliver(items, datagrams, slab);
    delivering_ = false;
    for (uint32_t i = 0; i < count; i++) Free(held_ids_[(first + i) % count_]);
  }

  // Discards every held completion, counted, and frees its buffer.
  void DiscardHeld() {
    discarded_ += coalesce_ ? coalesced_.Datagrams(completions_.data(), head_, held_) : held_;
    for (uint32_t i = 0; i < held_; i++) Free(held_ids_[(head_ + i) % count_]);
    head_ = (head_ + held_) % count_;
    held_ = 0;
  }

  // ---- Closing ------------------------------------------------------------

  // After Close, once no delivery is under way: a drain lets JS run first.
  void ContinueClose() {
    if (mode_ == CloseMode::kDrain)
      sink_->Wake();
    else
      Advance();
  }

  // One step of the close: cancel the multishot, take what completed
  // (delivered one batch a wake-up, or discarded), wait for its last
  // completion, then read the socket's queue the same way and finish.
  void Advance() {
    if (finishing_ || delivering_) return;
    Cancel();
    Reap();
    if (held_ == 0 && !armed_) {
      TakeBackAll();
      if (mode_ == CloseMode::kDrain) ReadQueued(count_);
      if (held_ == 0) return Finish();  // the queue is empty too
    }
    if (mode_ == CloseMode::kDrain && held_ > 0) {
      DeliverHeld(held_);
      if (mode_ == CloseMode::kDrain) return sink_->Wake();  // the next batch on the next wake-up
    }
    if (mode_ == CloseMode::kDiscard) {
      DiscardHeld();
      if (!armed_) return Finish();
    }
    StartPoll();  // the multishot's last completion is still to come: the eventfd says when
  }

  // Reads at most `limit` datagrams off the socket's queue with plain
  // recvmsg into free buffers, laid out as multishot recvmsg would, and
  // holds them. Only once the multishot is over.
  void ReadQueued(uint32_t limit) {
    for (uint32_t n = 0; n < limit && closing_budget_ > 0 && !free_.empty();) {
      uint16_t id = free_.back();
      if (slabs_[id] == nullptr && !ProvideMemory(id)) return;  // memory is short: Finish counts what is left
      uint8_t* buffer = Buffer(id);
      iovec payload = {buffer + PayloadOffset(), slot_capacity_};
      msghdr message;
      memset(&message, 0, sizeof message);
      message.msg_name = buffer + kNameOffset;
      message.msg_namelen = kNameBytes;
      message.msg_iov = &payload;
      message.msg_iovlen = 1;
      message.msg_control = buffer + ControlOffset();
      message.msg_controllen = control_size_;
      // MSG_TRUNC: the length on the wire, as the multishot reports it.
      ssize_t length = recvmsg(fd_, &message, MSG_DONTWAIT | MSG_TRUNC);
      if (length < 0 && (errno == EINTR || IsPerPacketError(errno))) continue;
      if (length < 0) return ReleaseMemory(id);  // empty (EAGAIN), or failing: nothing more to read
      free_.pop_back();
      closing_budget_--;
      n++;
      io_uring_recvmsg_out header = {message.msg_namelen, static_cast<uint32_t>(message.msg_controllen),
                                     static_cast<uint32_t>(length), static_cast<uint32_t>(message.msg_flags)};
      memcpy(buffer, &header, sizeof header);
      Hold(id, PayloadOffset() + std::min<size_t>(static_cast<size_t>(length), slot_capacity_));
    }
  }

  // Nothing is with the kernel: discards what is held and what the queue
  // still holds, counted; reads the drop counter one last time and closes.
  void Finish() {
    finishing_ = true;
    TakeBackAll();
    do {
      DiscardHeld();
      ReadQueued(count_);
    } while (held_ > 0);
    KernelDrops();  // the last reading: from here on no datagram is ours
    fd_closed_ = true;
    write_watch_.Close([this] { HandleClosed(); });  // before the fd goes: libuv forgets it first
    ::close(fd_);
    fd_ = -1;
    ring_.Close();
    StopPoll();
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
      auto* self = static_cast<UringBackend*>(handle->data);
      delete reinterpret_cast<uv_poll_t*>(handle);
      self->poll_ = nullptr;
      ::close(self->event_fd_);
      self->event_fd_ = -1;
      self->HandleClosed();
    });
  }

  // Finish closes two handles, the loop handle and the writable watch: the
  // second to close calls done_ (last: the binding may free this backend).
  void HandleClosed() {
    if (++handles_closed_ == 2) done_();
  }

  // The kernel's drop counter, accumulated in 64 bits; after the socket is
  // closed, its last reading.
  int64_t KernelDrops() const { return fd_closed_ ? drops_.Last() : drops_.Read(fd_); }

  // The ring cannot go on. A multishot still armed is cancelled; Close
  // waits for its end.
  void Stop(SysError error) {
    failed_ = true;
    Cancel();
    if (!armed_) StopPoll();
    sink_->Fail(error);
  }

  Sink* const sink_;
  uv_loop_t* const loop_;
  int fd_ = -1;
  int event_fd_ = -1;  // signalled by the kernel for every completion
  bool ipv6_ = false;
  uint32_t count_ = 0;  // buffers: the ring size, at most BufferRing::kMaxEntries
  uint32_t buffer_size_ = 0;    // payload bytes a datagram keeps
  bool coalesce_ = false;
  uint32_t slot_capacity_ = 0;  // payload bytes a buffer: buffer_size_, or a coalescing buffer's
  CoalescedRing coalesced_;     // coalescing: wire lengths, split datagrams, counters
  size_t control_size_ = 0;
  size_t buffer_bytes_ = 0;  // a buffer: header, name, control, payload, padding
  std::unique_ptr<SlabCutter> cutter_;  // buffers' memory (slabs outlive the backend while JS views them)
  std::vector<uint8_t*> addresses_;     // by buffer id: its memory while it is not free, else nullptr
  std::vector<Slab*> slabs_;            // by buffer id: the slab of that memory (one reference), else nullptr
  Uring ring_;
  BufferRing buffer_ring_;
  msghdr header_;  // what the multishot receives into (sizes only: the buffers come from the ring)
  std::vector<bool> in_ring_;    // by buffer id: in the buffer ring or completed, not yet reaped
  std::vector<uint16_t> free_;   // ids of free buffers
  uint32_t posted_ = 0;          // buffers in the buffer ring, as far as reaped completions tell
  // Held completions: a FIFO of count_ entries (never more are held than
  // there are buffers), from head_ on.
  std::vector<Completion> completions_;
  std::vector<uint16_t> held_ids_;
  std::vector<Completion> batch_;  // a batch that wraps around the FIFO, in order
  uint32_t head_ = 0;
  uint32_t held_ = 0;
  bool armed_ = false;        // the multishot's last completion is not reaped yet
  bool cancel_sent_ = false;  // its cancellation is submitted
  uv_poll_t* poll_ = nullptr;  // on the heap: libuv frees it only in its close callback
  WritableWatch write_watch_;  // the socket's fd, while a send waits for room
  int handles_closed_ = 0;     // by Finish: done_ once both are
  SendState send_state_;
  bool polling_ = false;
  bool closing_ = false;
  bool failed_ = false;
  bool delivering_ = false;  // inside Sink::Deliver: the held buffers are JS's until it returns
  CloseMode mode_ = CloseMode::kDrain;
  bool finishing_ = false;
  bool fd_closed_ = false;
  // Datagrams a close may still read: unbounded where a filter stops
  // arrivals, else what the receive buffer can hold.
  int64_t closing_budget_ = INT64_MAX;
  uint32_t peak_posted_ = 0;
  uint64_t discarded_ = 0;
  mutable SocketDrops drops_;
  std::function<void()> done_;
};

}  // namespace

std::unique_ptr<Backend> NewUringBackend(Sink* sink, uv_loop_s* loop) {
  return std::make_unique<UringBackend>(sink, loop);
}

}  // namespace dgram_ring
