// Windows backend: a ring of overlapped WSARecvMsg receives on an I/O
// completion port. Every slot has its own WSAOVERLAPPED, payload buffer and
// control buffer; "posted" means the receive is with the kernel.
//
// Threads:
// - The loop thread does everything that touches the socket or the ring:
//   Open, posting (the contract: one socket's receives from one thread, or
//   the kernel fills buffers in an unpredictable order), cancelling,
//   delivery, Close.
// - The process's completion thread (iocp_port.h: one port and one thread
//   for every iocp socket of every environment) waits in
//   GetQueuedCompletionStatusEx. For this socket it only marks slots
//   completed, counts the receives still with the kernel (the registration's
//   in_flight) and signals the backend's own uv_async_t (signal_), on the
//   loop of the environment that owns the socket; OnSignal, back on that
//   loop thread, reads the results. It never calls the Sink (so no
//   Sink::Wake is ever queued by this backend), and no slot is freed before
//   the port says it is done with the socket (IocpPort::Stopped).
//
// The ring is used in order: slots are posted at the tail and handed to JS
// from the head, so datagrams reach JS in posted order even when the kernel
// completes them out of order. Head to tail, the slots are:
//   [head_, +handing_)          being handed to JS by Sink::Deliver
//   [.., +posted_)              posted (with the kernel, or completed and
//                               waiting for delivery: either way, spoken for
//                               by a credit)
//   the rest                    free
//
// A lower grant cancels the newest posted receives beyond the credits
// (CancelIoEx on each one's OVERLAPPED); those that come back without data
// leave the tail, so with no credits nothing stays posted. One that completed
// with data despite the cancel stays posted until it is delivered.
//
// Close never blocks the loop. It cancels every posted receive and returns;
// the completion thread lets go of the socket once each has come back
// (cancelled, or with data: wine answers with STATUS_HANDLES_CLOSED where
// Windows says aborted, so any completion without data counts as
// cancelled). On later loop turns OnSignal hands what came back with data to
// JS in posted order (kDrain) or counts it in `discarded` (kDiscard), drops
// its registration and its reference on the port (OnPortStopped), does the
// same with what the socket's own queue holds (non-blocking reads, bounded:
// SetQueueBound), closes the socket, frees the ring, closes signal_ and
// calls `done` from its close callback. signal_ keeps the loop alive until
// then.
// Windows keeps no drop counter: what the queue holds beyond that bound,
// what arrives after it is read, and what overflowed the socket's buffer at
// any time are lost without a count (kernel_drops is -1).
//
// Coalescing (Options::coalesce, UDP_RECV_MAX_COALESCED_SIZE): each slot's
// buffer has room for 64 KiB, and a buffer the stack filled with several
// datagrams of one flow is split (coalesce.h) by the segment size its
// UDP_COALESCED_INFO control message gives; without that message (a known
// Windows fault) it is one datagram. Credits stay datagrams: the slots
// posted are those the credits pay for at the datagrams a buffer held lately.
#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "cmsg.h"
#include "coalesce.h"
#include "iocp_port.h"
#include "ring.h"
#include "send.h"
#include "sockaddr.h"
#include "win_errors.h"
#include "win_socket.h"

namespace dgram_ring {

namespace {

// Errors that report an ICMP message about one earlier packet, not the state
// of the socket: the slot is re-posted and the ring goes on (ARCHITECTURE.md §2).
// Pure: any thread.
bool IsPerPacketError(int error) {
  return error == WSAECONNRESET || error == WSAENETRESET || error == WSAEHOSTUNREACH || error == WSAENETUNREACH;
}

struct Slot {
  PortOperation operation;  // the completion packet points at its OVERLAPPED
  WSAMSG message;
  WSABUF buffer;
  sockaddr_storage remote;
  bool cancelled = false;  // loop thread: CancelIoEx was asked for this receive
};

// How a returned receive ended.
enum class Outcome { kData, kNoData, kFailed };

class IocpBackend final : public Backend {
 public:
  IocpBackend(Sink* sink, uv_loop_s* loop) : sink_(sink), loop_(loop) {}

  // Loop thread. Reached after a failed Open or from inside `done` (the
  // contract): the port was done with the socket and the ring freed by then,
  // or nothing was ever posted. Only a failed Open can leave the
  // registration or signal_ here.
  ~IocpBackend() override {
    if (registration_ != nullptr) IocpPort::Unregister(registration_);  // it never posted
    if (signal_ != nullptr) {
      uv_handle_set_data(Handle(), nullptr);
      uv_close(Handle(), OnSignalClosed);
    }
  }

  // Any thread (a constant).
  const char* Name() const override { return "iocp"; }

  // Loop thread. Sending (send_win.cc): WSASendMsg on the socket, not
  // overlapped, so nothing reaches the completion port. No writability watch:
  // lib/sender.ts retries a send the socket had no room for on a timer.
  uint32_t Send(const SendBatch& batch) override {
    send_state_.ipv6_socket = ipv6_;
    return SendRows(static_cast<uintptr_t>(closing_ ? INVALID_SOCKET : socket_.get()), &send_state_, batch);
  }
  int WaitWritable(std::function<void()> /*ready*/) override { return kUvENOTSUP; }

  // Loop thread.
  SysError Open(const Options& options) override {
    ipv6_ = options.ipv6;
    ring_size_ = options.ring_size;
    buffer_size_ = options.buffer_size;
    coalesce_ = options.coalesce;
    slot_capacity_ = coalesce_ ? std::max(buffer_size_, kCoalescedBufferBytes) : buffer_size_;
    if (SysError err = OpenSocket(options, &socket_, &recvmsg_)) return err;
    if (SysError err = AllocateRing(options)) return err;
    signal_ = new uv_async_t;
    int rc = uv_async_init(loop_, signal_, OnSignalCall);
    if (rc != 0) {
      delete signal_;
      signal_ = nullptr;
      return SysError{rc, "uv_async_init"};
    }
    uv_handle_set_data(Handle(), this);
    uv_unref(Handle());  // UpdateRef refs it while a consumer waits
    if (SysError err = IocpPort::Register(WakeSignal, signal_, &registration_)) return err;
    return IocpPort::Associate(registration_, socket_.get());
  }

  // Loop thread.
  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const override {
    sockaddr_storage name = {};
    int length = sizeof name;
    if (getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&name), &length) == SOCKET_ERROR)
      return WsaError("getsockname");
    if (!ReadSockaddr(name, static_cast<size_t>(length), addr, family, port)) return SysError{kUvEAFNOSUPPORT, "getsockname"};
    return SysError{};
  }

  // Loop thread, possibly inside Sink::Deliver: post up to the credits, or
  // cancel the newest posted receives beyond them.
  void OnCredits() override {
    if (closing_ || failed_) return;
    CancelSurplus();
    Refill();
    if (closing_ || failed_) return;  // Refill failed, and JS may have closed in its error handler
    UpdateRef();
    // Completions held back for want of credits can go now.
    if (HeadCompleted() && sink_->Credits() > 0) Signal();
  }

  // Loop thread. Every wake of this backend comes through signal_ (OnSignal):
  // it never calls Sink::Wake, so there is nothing to do here.
  void OnWake() override {}

  // Loop thread.
  BackendStats Stats() const override {
    BackendStats stats;
    stats.posted = posted_;
    stats.peak_posted = peak_posted_;
    stats.kernel_drops = -1;  // Windows keeps no drop counter for a socket
    stats.discarded = discarded_;
    stats.coalesced = coalesced_.coalesced();
    return stats;
  }

  // Loop thread.
  int ReceiveBufferSize() const override {
    int bytes = 0;
    int length = sizeof bytes;
    if (socket_.get() == INVALID_SOCKET ||
        getsockopt(socket_.get(), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<char*>(&bytes), &length) == SOCKET_ERROR)
      return 0;
    return bytes;
  }

  // Loop thread. signal_ is this backend's only loop handle: while a consumer
  // waits (credits) it keeps the loop alive unless told not to; from Close to
  // `done` it always does.
  void SetRef(bool keep_alive) override {
    keep_alive_ = keep_alive;
    UpdateRef();
  }

  // Loop thread, possibly inside Sink::Deliver or Sink::Fail. Cancels what
  // is posted and returns; OnSignal does the rest on later turns and calls
  // `done` from signal_'s close callback. A second call (kDiscard over a
  // kDrain under way, at environment teardown) turns the rest of the close
  // into a discarding one; its `done`, if any, replaces the first: one is called.
  void Close(CloseMode mode, std::function<void()> done) override {
    if (closing_) {
      if (mode == CloseMode::kDiscard) mode_ = CloseMode::kDiscard;
      if (done) done_ = std::move(done);
      return;
    }
    closing_ = true;
    mode_ = mode;
    done_ = std::move(done);
    if (registration_ == nullptr) return done_();  // Open failed: nothing was ever posted (defensive: not called then)
    UpdateRef();
    CancelIoEx(reinterpret_cast<HANDLE>(socket_.get()), nullptr);  // ERROR_NOT_FOUND: nothing posted
    // The port lets go of the socket once every receive is back (at once
    // if none is out).
    IocpPort::BeginClose(registration_);
    // Never finish inside Close: it may run inside Sink::Deliver, whose slots
    // must stay untouched until it returns.
    Signal();
  }

 private:
  // Loop thread.
  SysError AllocateRing(const Options& options) {
    // Room for both pktinfos: wine sends both for IPv4 on a dual-stack socket.
    control_size_ = ControlBufferSize(options);
    slots_.reset(new (std::nothrow) Slot[ring_size_]);
    data_.reset(new (std::nothrow) uint8_t[static_cast<size_t>(ring_size_) * slot_capacity_]);
    // Each slot's control buffer starts at a multiple of control_size_, which
    // ControlBufferSize keeps a multiple of the headers' alignment.
    control_.reset(new (std::nothrow) uint8_t[static_cast<size_t>(ring_size_) * control_size_]);
    if (!slots_ || !data_ || !control_) return SysError{kUvENOMEM, "malloc"};
    batch_.resize(ring_size_);
    if (coalesce_) coalesced_.Resize(ring_size_);  // indexed like batch_
    for (uint32_t i = 0; i < ring_size_; i++) {
      Slot& slot = slots_[i];
      slot.buffer.buf = reinterpret_cast<CHAR*>(Data(i));
      slot.buffer.len = slot_capacity_;
    }
    return SysError{};
  }

  // Loop thread, like everything below unless it says otherwise.
  uint8_t* Data(uint32_t index) const { return data_.get() + static_cast<size_t>(index) * slot_capacity_; }
  uint8_t* Control(uint32_t index) const { return control_.get() + static_cast<size_t>(index) * control_size_; }

  // The slot `offset` places after the head.
  uint32_t Index(uint32_t offset) const { return (head_ + offset) % ring_size_; }
  // The posted slot `offset` places after the oldest posted one.
  Slot& PostedSlot(uint32_t offset) const { return slots_[Index(handing_ + offset)]; }

  // Loop thread: whether the oldest posted slot has completed.
  bool HeadCompleted() const { return posted_ > 0 && Completed(PostedSlot(0)); }

  // Any thread: whether the port has returned the slot's receive.
  static bool Completed(const Slot& slot) { return slot.operation.completed.load(std::memory_order_acquire); }

  // Loop thread: the receives the credits pay for (datagrams; with
  // coalescing, the buffers they fill at the datagrams a buffer held lately).
  uint32_t Allowance() const {
    uint32_t credits = sink_->Credits();
    return coalesce_ ? coalesced_.BuffersFor(credits) : credits;
  }

  // Loop thread: posts free slots while JS has credits for them.
  void Refill() {
    while (!closing_ && !failed_ && posted_ < Allowance() && handing_ + posted_ < ring_size_) {
      int error = Post(Index(handing_ + posted_));
      if (error == 0) {
        posted_++;
      } else if (!IsPerPacketError(error)) {
        return Stop(SysError{TranslateError(error), "WSARecvMsg"});
      }
      // A per-packet error consumed one queued ICMP report and queued no
      // completion: the same slot is posted again.
    }
    peak_posted_ = std::max(peak_posted_, posted_);
  }

  // Loop thread: the message header of slot `index`, reset for a receive
  // (WSARecvMsg writes namelen, Control.len and dwFlags back).
  WSAMSG* PrepareMessage(uint32_t index) {
    Slot& slot = slots_[index];
    memset(&slot.message, 0, sizeof slot.message);
    slot.message.name = reinterpret_cast<LPSOCKADDR>(&slot.remote);
    slot.message.namelen = sizeof slot.remote;
    slot.message.lpBuffers = &slot.buffer;
    slot.message.dwBufferCount = 1;
    slot.message.Control.buf = reinterpret_cast<CHAR*>(Control(index));
    slot.message.Control.len = static_cast<ULONG>(control_size_);
    return &slot.message;
  }

  // Loop thread. Returns 0 once the receive is posted (a completion packet
  // will come), else the WSA error of a receive that failed at once.
  int Post(uint32_t index) {
    Slot& slot = slots_[index];
    slot.operation.completed.store(false, std::memory_order_relaxed);
    slot.cancelled = false;
    memset(&slot.operation.overlapped, 0, sizeof slot.operation.overlapped);
    WSAMSG* message = PrepareMessage(index);
    registration_->in_flight.fetch_add(1, std::memory_order_relaxed);
    // No byte count: with an OVERLAPPED it may be wrong; the completion tells.
    if (recvmsg_(socket_.get(), message, nullptr, &slot.operation.overlapped, nullptr) == 0) return 0;
    int error = WSAGetLastError();
    // WSAEMSGSIZE at once is a warning status (a datagram cut to fit), not a
    // failure: its completion packet is queued like a success's.
    if (error == WSA_IO_PENDING || error == WSAEMSGSIZE) return 0;
    registration_->in_flight.fetch_sub(1, std::memory_order_relaxed);  // no packet will come
    return error;
  }

  // Loop thread, possibly inside Sink::Deliver: the credits fell below what
  // is posted. Cancels the newest receives still with the kernel until what
  // is left (completed ones included) fits the credits; each comes back
  // through the port and TrimCancelledTail or ProcessCompletions takes it
  // off, unless it completed with data first (then it is delivered in turn).
  void CancelSurplus() {
    uint32_t allowance = Allowance();
    if (posted_ <= allowance) return;
    uint32_t surplus = posted_ - allowance;
    for (uint32_t offset = posted_; offset-- > 0 && surplus > 0;) {
      Slot& slot = PostedSlot(offset);
      if (slot.cancelled) {
        surplus--;  // on its way back
      } else if (!Completed(slot)) {
        // ERROR_NOT_FOUND: it completed meanwhile; its packet is on its way.
        CancelIoEx(reinterpret_cast<HANDLE>(socket_.get()), &slot.operation.overlapped);
        slot.cancelled = true;
        surplus--;
      }
    }
  }

  // Loop thread: takes the newest posted slots off while they came back
  // cancelled without data, so that `posted` falls to the credits.
  void TrimCancelledTail() {
    while (posted_ > 0) {
      Slot& slot = PostedSlot(posted_ - 1);
      if (!slot.cancelled || !Completed(slot)) break;
      DWORD bytes = 0;
      DWORD flags = 0;
      int error = 0;
      if (Result(slot, &bytes, &flags, &error) == Outcome::kData) break;  // kept: delivered in order
      posted_--;
    }
  }

  // Loop thread, for a slot the port has returned: how its receive ended.
  // Any failure of a receive that was cancelled (or is being closed) is its
  // cancellation, whatever the status says (wine: STATUS_HANDLES_CLOSED).
  Outcome Result(Slot& slot, DWORD* bytes, DWORD* flags, int* error) const {
    *error = 0;
    if (!WSAGetOverlappedResult(socket_.get(), &slot.operation.overlapped, bytes, FALSE, flags)) *error = WSAGetLastError();
    if (*error == 0 || *error == WSAEMSGSIZE) return Outcome::kData;
    if (slot.cancelled || closing_ || IsPerPacketError(*error)) return Outcome::kNoData;
    return Outcome::kFailed;
  }

  // Loop thread: fills `out` from a completed slot. `message_too_big` is
  // the completion's WSAEMSGSIZE.
  void Complete(uint32_t index, DWORD bytes, DWORD flags, bool message_too_big, Completion* out) const {
    const Slot& slot = slots_[index];
    *out = Completion{};
    out->data = Data(index);
    out->length = std::min<DWORD>(bytes, slot_capacity_);
    DWORD message_flags = slot.message.dwFlags | flags;
    bool control_truncated = (message_flags & MSG_CTRUNC) != 0;
    if (control_truncated) out->flags |= kControlTruncated;
    // Windows reports a datagram cut to fit as WSAEMSGSIZE. Wine also reports
    // a cut control buffer so (with MSG_CTRUNC), and never sets MSG_TRUNC: a
    // payload shorter than the buffer was not cut.
    if ((message_flags & MSG_TRUNC) ||
        (message_too_big && !(control_truncated && bytes < slot_capacity_)))
      out->flags |= kTruncated;
    // Windows reports link-layer broadcast and multicast on every receive.
    out->flags |= kHasBroadcastInfo;
    if (message_flags & MSG_BCAST) out->flags |= kBroadcast;
    if (message_flags & MSG_MCAST) out->flags |= kMulticast;
    int family = 4;
    if (ReadSockaddr(slot.remote, static_cast<size_t>(slot.message.namelen), out->remote_addr, &family, &out->remote_port) && family == 6)
      out->flags |= kRemoteIPv6;
    size_t control_length = std::min<size_t>(slot.message.Control.len, control_size_);
    DecodeControl(Control(index), control_length, ipv6_, out);
  }

  // Loop thread: adds slot `index`, received with `bytes`, to the batch
  // being gathered (batch_[*count]); with coalescing, as a buffer that may
  // hold several datagrams (bytes is its length on the wire).
  void Collect(uint32_t index, DWORD bytes, DWORD flags, bool message_too_big, size_t* count) {
    Complete(index, bytes, flags, message_too_big, &batch_[*count]);
    if (coalesce_) coalesced_.Filled(static_cast<uint32_t>(*count), batch_[*count], bytes);
    ++*count;
  }

  // Loop thread: the datagrams slot `index`, received with `bytes`, holds
  // (what a discarding close counts).
  uint64_t Datagrams(uint32_t index, DWORD bytes, DWORD flags) const {
    if (!coalesce_) return 1;
    Completion whole;
    Complete(index, bytes, flags, false, &whole);
    return SegmentCount(bytes, whole.segment_size);
  }

  // Loop thread: hands the `count` buffers gathered in batch_ to JS as one
  // batch, split into datagrams with coalescing.
  void DeliverBatch(size_t count) {
    if (count == 0) return;
    if (!coalesce_) return sink_->Deliver(batch_.data(), count, nullptr);
    size_t datagrams = 0;
    const Completion* items = coalesced_.Split(batch_.data(), 0, static_cast<uint32_t>(count), buffer_size_, &datagrams);
    coalesced_.Received(static_cast<uint32_t>(count), datagrams);
    sink_->Deliver(items, datagrams, nullptr);
  }

  // Loop thread: the ring cannot go on. What is posted stays posted until
  // Close cancels it.
  void Stop(SysError error) {
    failed_ = true;
    UpdateRef();
    sink_->Fail(error);
  }

  // Loop thread (signal_ itself is only closed there).
  uv_handle_t* Handle() const { return reinterpret_cast<uv_handle_t*>(signal_); }

  // Any thread: OnSignal runs on the loop thread soon (calls coalesce).
  void Signal() { uv_async_send(signal_); }

  // Loop thread: signal_ keeps the loop alive while a consumer waits for
  // datagrams (as recvmmsg's uv_poll does), unless SetRef(false), and from
  // Close until `done`.
  void UpdateRef() {
    bool want = closing_ || (keep_alive_ && !failed_ && sink_->Credits() > 0);
    if (want == refed_ || signal_ == nullptr) return;
    refed_ = want;
    if (want)
      uv_ref(Handle());
    else
      uv_unref(Handle());
  }

  // Loop thread: libuv's callback for signal_.
  static void OnSignalCall(uv_async_t* handle) {
    static_cast<IocpBackend*>(uv_handle_get_data(reinterpret_cast<uv_handle_t*>(handle)))->OnSignal();
  }

  // Any thread (the completion thread): the registration's wake function.
  static void WakeSignal(void* signal) { uv_async_send(static_cast<uv_async_t*>(signal)); }

  // Loop thread, after the completion thread (or the loop thread itself)
  // signalled.
  void OnSignal() {
    if (closing_) return ContinueClose();
    if (failed_) return;
    bool abandoned = false;
    DWORD error = 0;
    if (IocpPort::Stopped(registration_, &abandoned, &error))  // the port failed: nothing completes any more
      return Stop(SysError{TranslateError(error), "GetQueuedCompletionStatusEx"});
    ProcessCompletions();
  }

  // Loop thread: hands the completed prefix of the posted slots to JS as one
  // batch, then posts again as credits allow.
  void ProcessCompletions() {
    TrimCancelledTail();
    uint32_t allowance = Allowance();
    size_t count = 0;       // buffers in the batch (each a datagram, unless coalescing)
    uint32_t consumed = 0;  // slots taken from the head: the batch and skipped ones
    SysError fatal;
    while (consumed < posted_) {
      Slot& slot = PostedSlot(consumed);
      if (!Completed(slot)) break;
      DWORD bytes = 0;
      DWORD flags = 0;
      int error = 0;
      Outcome outcome = Result(slot, &bytes, &flags, &error);
      if (outcome == Outcome::kData) {
        if (count == allowance) break;  // wait for JS to grant more
        Collect(Index(consumed), bytes, flags, error == WSAEMSGSIZE, &count);
      } else if (outcome == Outcome::kFailed) {
        fatal = SysError{TranslateError(error), "WSARecvMsg"};
        consumed++;  // the failed slot is free again
        break;
      }
      consumed++;
    }
    HandOver(consumed, count);
    if (closing_) return;  // JS closed the socket from its batch handler: Close signalled
    UpdateRef();
    if (fatal) return Stop(fatal);
    Refill();
    if (closing_ || failed_) return;
    // More completed than this batch took: deliver them on the next turn of
    // the loop rather than holding it now.
    if (HeadCompleted() && sink_->Credits() > 0) Signal();
  }

  // Loop thread: takes `consumed` slots off the head, the first `count` of
  // them (in batch_) handed to JS. Deliver may re-enter (OnCredits, Close):
  // the slots being handed over are not posted, so neither touches them.
  void HandOver(uint32_t consumed, size_t count) {
    if (consumed == 0) return;
    posted_ -= consumed;
    handing_ = consumed;
    DeliverBatch(count);
    head_ = Index(consumed);
    handing_ = 0;
  }

  // Loop thread, on every signal from Close to `done`.
  void ContinueClose() {
    if (registration_ != nullptr) {
      ConsumeClosing();
      bool abandoned = false;
      DWORD error = 0;
      if (!IocpPort::Stopped(registration_, &abandoned, &error)) return;  // more to come back: it signals
      OnPortStopped();
    }
    if (socket_.get() == INVALID_SOCKET) return;  // finishing already
    if (ReadQueue()) return Signal();  // more next turn
    Finish();
  }

  // Loop thread, closing: takes the returned prefix of the posted slots off,
  // in posted order: with data, handed to JS (kDrain) or counted as discarded
  // (kDiscard); without, freed.
  void ConsumeClosing() {
    size_t count = 0;
    uint32_t consumed = 0;
    while (consumed < posted_) {
      Slot& slot = PostedSlot(consumed);
      if (!Completed(slot)) break;
      DWORD bytes = 0;
      DWORD flags = 0;
      int error = 0;
      if (Result(slot, &bytes, &flags, &error) == Outcome::kData) {
        if (mode_ == CloseMode::kDrain)
          Collect(Index(consumed), bytes, flags, error == WSAEMSGSIZE, &count);
        else
          discarded_ += Datagrams(Index(consumed), bytes, flags);
      }
      consumed++;
    }
    HandOver(consumed, count);
  }

  // Loop thread, once the port is done with the socket (the completion
  // thread's last touch of it, its last wake, has returned). Drops the
  // registration and the reference on the port; the last socket's shuts the
  // port down (its thread has nothing left to wait for: no blocking on the
  // kernel).
  void OnPortStopped() {
    IocpPort::Unregister(registration_);  // an abandoned one is kept: late packets still name it
    registration_ = nullptr;
    if (posted_ > 0) {
      // The port gave up after kCloseWaitMs with receives still out (or it
      // failed). The kernel may still write their buffers: the slots,
      // payload and control buffers are leaked, never freed (ring_size x
      // (slot capacity + control + sizeof(Slot)) bytes), and so is the
      // registration (a few dozen bytes). closesocket below ends the
      // receives. Nothing else is leaked, and the socket queue is not read
      // (the buffers are not ours).
      slots_.release();
      data_.release();
      control_.release();
      posted_ = 0;
      return;
    }
    // Nothing is with the kernel now: the socket's queue is read with plain
    // non-blocking calls (no completion packets) into the free slots.
    u_long non_blocking = 1;
    if (ioctlsocket(socket_.get(), FIONBIO, &non_blocking) == 0) SetQueueBound();
  }

  // Loop thread: how much close reads off the socket's queue at most. The
  // queue holds at most SO_RCVBUF bytes of payload, so once that much is
  // read, all it held when close began has been; the bound only stops a
  // sender that never stops from holding the close open for ever (under a
  // flood, what arrived meanwhile is read up to it). The datagram count
  // bounds empty and small datagrams: at 64 bytes or more a datagram, a
  // full queue is read whole; below that, what lies beyond is lost uncounted.
  void SetQueueBound() {
    int receive_buffer = 0;
    int length = sizeof receive_buffer;
    if (getsockopt(socket_.get(), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<char*>(&receive_buffer), &length) != 0)
      receive_buffer = 0;
    queue_bytes_ = receive_buffer > 0 ? static_cast<uint32_t>(receive_buffer) : 65536;  // Windows' default
    queue_datagrams_ = std::max<uint32_t>(ring_size_, queue_bytes_ / 64);
  }

  // Loop thread, closing, nothing posted: reads up to a ring's worth of what
  // the socket's queue holds without waiting, hands it to JS as one batch
  // (kDrain) or counts it as discarded (kDiscard). Returns whether there may
  // be more (the next turn reads on, so the loop is not held).
  bool ReadQueue() {
    size_t count = 0;
    for (uint32_t reads = 0; reads < ring_size_ && queue_datagrams_ > 0 && queue_bytes_ > 0; reads++) {
      queue_datagrams_--;
      uint32_t index = static_cast<uint32_t>(count);
      WSAMSG* message = PrepareMessage(index);
      DWORD bytes = 0;
      int error = recvmsg_(socket_.get(), message, &bytes, nullptr, nullptr) == 0 ? 0 : WSAGetLastError();
      if (error == 0 || error == WSAEMSGSIZE) {
        // A call that fails with WSAEMSGSIZE reports no byte count (measured
        // under wine): the datagram filled the buffer.
        if (error == WSAEMSGSIZE && bytes == 0) bytes = slot_capacity_;
        queue_bytes_ -= std::min<uint32_t>(queue_bytes_, bytes);
        if (mode_ == CloseMode::kDrain)
          Collect(index, bytes, 0, error == WSAEMSGSIZE, &count);
        else
          discarded_ += Datagrams(index, bytes, 0);
      } else if (!IsPerPacketError(error)) {
        queue_datagrams_ = 0;  // WSAEWOULDBLOCK: the queue is empty; anything else: it cannot be read
      }
    }
    DeliverBatch(count);  // nothing is posted: no one else touches the slots
    return queue_datagrams_ > 0 && queue_bytes_ > 0;
  }

  // Loop thread: closes the socket, frees the ring and closes signal_; `done`
  // runs from its close callback.
  void Finish() {
    socket_.reset();
    slots_.reset();
    data_.reset();
    control_.reset();
    batch_ = std::vector<Completion>();
    posted_ = 0;
    uv_close(Handle(), OnSignalClosed);
  }

  // Loop thread: signal_ is closed. Frees it, then calls `done` (last: the
  // binding may free this backend inside it), unless the backend is gone (a
  // failed Open) and there is no one to tell.
  static void OnSignalClosed(uv_handle_t* handle) {
    auto* self = static_cast<IocpBackend*>(uv_handle_get_data(handle));
    delete reinterpret_cast<uv_async_t*>(handle);
    if (self == nullptr) return;
    self->signal_ = nullptr;
    std::function<void()> done = std::move(self->done_);
    done();
  }

  Sink* const sink_;
  uv_loop_s* const loop_;
  bool ipv6_ = false;
  uint32_t ring_size_ = 0;
  uint32_t buffer_size_ = 0;
  size_t control_size_ = 0;
  bool coalesce_ = false;
  uint32_t slot_capacity_ = 0;  // payload bytes a slot: buffer_size_, or a coalescing buffer's
  UniqueSocket socket_;
  SendState send_state_;  // send_win.cc
  // Shared with the process's completion thread (iocp_port.h), from Open
  // until the port is done with the socket (OnPortStopped).
  PortRegistration* registration_ = nullptr;
  uv_async_t* signal_ = nullptr;  // on the heap: libuv frees it only in its close callback
  LPFN_WSARECVMSG recvmsg_ = nullptr;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint8_t[]> data_;     // ring_size_ payload buffers
  std::unique_ptr<uint8_t[]> control_;  // ring_size_ control buffers
  std::vector<Completion> batch_;       // what one Deliver hands over (buffers, with coalescing)
  CoalescedRing coalesced_;             // coalescing: batch_'s wire lengths, split datagrams, counters
  uint32_t head_ = 0;
  uint32_t handing_ = 0;
  uint32_t posted_ = 0;
  uint32_t peak_posted_ = 0;
  uint64_t discarded_ = 0;
  bool closing_ = false;
  bool failed_ = false;
  bool keep_alive_ = true;  // SetRef
  bool refed_ = false;      // signal_ is referenced
  CloseMode mode_ = CloseMode::kDrain;
  uint32_t queue_datagrams_ = 0;  // datagrams close may still read off the queue
  uint32_t queue_bytes_ = 0;      // payload bytes likewise
  std::function<void()> done_;
};

}  // namespace

std::unique_ptr<Backend> NewIocpBackend(Sink* sink, uv_loop_s* loop) { return std::make_unique<IocpBackend>(sink, loop); }

}  // namespace dgram_ring
