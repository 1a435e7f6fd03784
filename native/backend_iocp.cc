// Windows backend: a ring of overlapped WSARecvMsg receives on an I/O
// completion port. Every slot has its own WSAOVERLAPPED, payload buffer and
// control buffer; "posted" means the receive is with the kernel.
//
// Threads:
// - The loop thread does everything that touches the socket or the ring:
//   Open, posting (the contract: one socket's receives from one thread, or
//   the kernel fills buffers in an unpredictable order), delivery, Close.
// - One completion thread waits in GetQueuedCompletionStatusEx. It only marks
//   slots completed and calls Sink::Wake; OnWake, back on the loop thread,
//   reads the results.
//
// The ring is used in order: slots are posted at the tail and handed to JS
// from the head, so datagrams reach JS in posted order even when the kernel
// completes them out of order. Head to tail, the slots are:
//   [head_, +handing_)          being handed to JS by Sink::Deliver
//   [.., +posted_)              posted (with the kernel, or completed and
//                               waiting for delivery: either way, spoken for
//                               by a credit)
//   the rest                    free
#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "cmsg.h"
#include "ring.h"
#include "sockaddr.h"
#include "win_errors.h"
#include "win_socket.h"

namespace dgram_ring {

namespace {

// Errors that report an ICMP message about one earlier packet, not the state
// of the socket: the slot is re-posted and the ring goes on (DESIGN.md §5).
bool IsPerPacketError(int error) {
  return error == WSAECONNRESET || error == WSAENETRESET || error == WSAEHOSTUNREACH || error == WSAENETUNREACH;
}

// Completion keys: the socket's receives, and the packet Close posts to end
// the completion thread.
constexpr ULONG_PTR kSocketKey = 1;
constexpr ULONG_PTR kStopKey = 2;

// Completions taken from the port per call.
constexpr ULONG kEntriesPerWait = 64;

// How long Close waits for cancelled receives to come back, before and then
// after closing the socket. They come back at once in the tests; the bound
// only keeps a receive that never does from hanging the loop for ever.
constexpr DWORD kCloseWaitMs = 5000;

struct Slot {
  WSAOVERLAPPED overlapped;  // the completion packet points here
  WSAMSG message;
  WSABUF buffer;
  sockaddr_storage remote;
  // Set by the completion thread once the port has returned this receive;
  // read (and reset before posting) by the loop thread.
  std::atomic<bool> completed{false};
};

class IocpBackend final : public Backend {
 public:
  explicit IocpBackend(Sink* sink) : sink_(sink) {}

  // Reached after a failed Open or once Close has run (the contract), where
  // Shutdown has nothing left to do; it is here so that no path can free a
  // buffer the kernel still holds.
  ~IocpBackend() override { Shutdown(); }

  const char* Name() const override { return "iocp"; }

  // Loop thread.
  SysError Open(const Options& options) override {
    ipv6_ = options.ipv6;
    ring_size_ = options.ring_size;
    buffer_size_ = options.buffer_size;
    if (SysError err = OpenSocket(options, &socket_, &recvmsg_)) return err;
    if (SysError err = AllocateRing()) return err;
    port_.reset(CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1));
    if (!port_) return Win32Error("CreateIoCompletionPort");
    // Every completion, even of a receive that finishes inside WSARecvMsg,
    // goes through the port (no FILE_SKIP_COMPLETION_PORT_ON_SUCCESS): one
    // path marks every slot completed.
    if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(socket_.get()), port_.get(), kSocketKey, 0) == nullptr)
      return Win32Error("CreateIoCompletionPort");
    thread_.reset(CreateThread(nullptr, 0, CompletionThread, this, 0, nullptr));
    if (!thread_) return Win32Error("CreateThread");
    return SysError{};
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

  // Loop thread, possibly inside Sink::Deliver.
  void OnCredits() override {
    if (closing_ || failed_) return;
    Refill();
    if (closing_ || failed_) return;  // Refill failed, and JS may have closed in its error handler
    // Completions held back for want of credits can go now.
    if (HeadCompleted() && sink_->Credits() > 0) sink_->Wake();
  }

  // Loop thread: hands the completed prefix of the posted slots to JS as one
  // batch, then posts again as credits allow.
  void OnWake() override {
    if (closing_ || failed_) return;
    if (DWORD error = thread_error_.load()) return Stop(SysError{TranslateError(error), "GetQueuedCompletionStatusEx"});
    uint32_t credits = sink_->Credits();
    size_t count = 0;       // datagrams in the batch
    uint32_t consumed = 0;  // slots taken from the head: the batch and skipped ones
    SysError fatal;
    while (consumed < posted_) {
      uint32_t index = Index(consumed);
      Slot& slot = slots_[index];
      if (!slot.completed.load(std::memory_order_acquire)) break;
      DWORD bytes = 0;
      DWORD flags = 0;
      int error = 0;
      if (!WSAGetOverlappedResult(socket_.get(), &slot.overlapped, &bytes, FALSE, &flags)) error = WSAGetLastError();
      if (error == 0 || error == WSAEMSGSIZE) {
        if (count == credits) break;  // wait for JS to grant more
        Complete(index, bytes, flags, error == WSAEMSGSIZE, &batch_[count++]);
      } else if (!IsPerPacketError(error)) {
        fatal = SysError{TranslateError(error), "WSARecvMsg"};
        consumed++;  // the failed slot is free again
        break;
      }
      consumed++;
    }
    if (consumed == 0) return;
    posted_ -= consumed;
    handing_ = consumed;
    if (count > 0) {
      sink_->Deliver(batch_.data(), count);
      if (closing_) return;  // JS closed the socket from its batch handler
    }
    head_ = Index(consumed);
    handing_ = 0;
    if (fatal) return Stop(fatal);
    Refill();
    if (closing_ || failed_) return;
    // More completed than this batch took: deliver them on the next turn of
    // the loop rather than holding it now.
    if (HeadCompleted() && sink_->Credits() > 0) sink_->Wake();
  }

  BackendStats Stats() const override {
    BackendStats stats;
    stats.posted = posted_;
    stats.peak_posted = peak_posted_;
    stats.kernel_drops = -1;  // Windows keeps no drop counter for a socket
    return stats;
  }

  // Loop thread, possibly inside Sink::Deliver or Sink::Fail. Blocks the loop
  // until the kernel has given back every posted buffer: it must not wait for
  // OnWake, which never comes at environment teardown.
  // Loop thread. Nothing to do: iocp has no loop handle of its own.
  void SetRef(bool) override {}

  // Loop thread. Both modes free what completed without delivering it.
  void Close(CloseMode, std::function<void()> done) override {
    Shutdown();
    done();  // last: the binding may free this backend inside it
  }

 private:
  // Loop thread.
  SysError AllocateRing() {
    // Room for both pktinfos: wine sends both for IPv4 on a dual-stack socket.
    control_size_ = ControlBufferSize();
    slots_.reset(new (std::nothrow) Slot[ring_size_]);
    data_.reset(new (std::nothrow) uint8_t[static_cast<size_t>(ring_size_) * buffer_size_]);
    // Each slot's control buffer starts at a multiple of control_size_, which
    // ControlBufferSize keeps a multiple of the headers' alignment.
    control_.reset(new (std::nothrow) uint8_t[static_cast<size_t>(ring_size_) * control_size_]);
    if (!slots_ || !data_ || !control_) return SysError{kUvENOMEM, "malloc"};
    batch_.resize(ring_size_);
    for (uint32_t i = 0; i < ring_size_; i++) {
      Slot& slot = slots_[i];
      slot.buffer.buf = reinterpret_cast<CHAR*>(Data(i));
      slot.buffer.len = buffer_size_;
    }
    return SysError{};
  }

  uint8_t* Data(uint32_t index) const { return data_.get() + static_cast<size_t>(index) * buffer_size_; }
  uint8_t* Control(uint32_t index) const { return control_.get() + static_cast<size_t>(index) * control_size_; }

  // The slot `offset` places after the head.
  uint32_t Index(uint32_t offset) const { return (head_ + offset) % ring_size_; }

  // Whether the oldest posted slot has completed.
  bool HeadCompleted() const {
    return posted_ > 0 && slots_[Index(handing_)].completed.load(std::memory_order_acquire);
  }

  // Loop thread: posts free slots while JS has credits for them.
  void Refill() {
    while (!closing_ && !failed_ && posted_ < sink_->Credits() && handing_ + posted_ < ring_size_) {
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

  // Loop thread. Returns 0 once the receive is posted (a completion packet
  // will come), else the WSA error of a receive that failed at once.
  int Post(uint32_t index) {
    Slot& slot = slots_[index];
    slot.completed.store(false, std::memory_order_relaxed);
    memset(&slot.overlapped, 0, sizeof slot.overlapped);
    // WSARecvMsg writes namelen, Control.len and dwFlags back: reset them.
    memset(&slot.message, 0, sizeof slot.message);
    slot.message.name = reinterpret_cast<LPSOCKADDR>(&slot.remote);
    slot.message.namelen = sizeof slot.remote;
    slot.message.lpBuffers = &slot.buffer;
    slot.message.dwBufferCount = 1;
    slot.message.Control.buf = reinterpret_cast<CHAR*>(Control(index));
    slot.message.Control.len = static_cast<ULONG>(control_size_);
    // No byte count: with an OVERLAPPED it may be wrong; the completion tells.
    if (recvmsg_(socket_.get(), &slot.message, nullptr, &slot.overlapped, nullptr) == 0) return 0;
    int error = WSAGetLastError();
    // WSAEMSGSIZE at once is a warning status (a datagram cut to fit), not a
    // failure: its completion packet is queued like a success's.
    return error == WSA_IO_PENDING || error == WSAEMSGSIZE ? 0 : error;
  }

  // Loop thread: fills `out` from a completed slot. `message_too_big` is
  // the completion's WSAEMSGSIZE.
  void Complete(uint32_t index, DWORD bytes, DWORD flags, bool message_too_big, Completion* out) const {
    const Slot& slot = slots_[index];
    *out = Completion{};
    out->data = Data(index);
    out->length = std::min<DWORD>(bytes, buffer_size_);
    DWORD message_flags = slot.message.dwFlags | flags;
    bool control_truncated = (message_flags & MSG_CTRUNC) != 0;
    if (control_truncated) out->flags |= kControlTruncated;
    // Windows reports a datagram cut to fit as WSAEMSGSIZE. Wine also reports
    // a cut control buffer so (with MSG_CTRUNC), and never sets MSG_TRUNC: a
    // payload shorter than the buffer was not cut.
    if ((message_flags & MSG_TRUNC) ||
        (message_too_big && !(control_truncated && bytes < buffer_size_)))
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

  // Loop thread: the ring cannot go on. What is posted stays posted until
  // Close cancels it.
  void Stop(SysError error) {
    failed_ = true;
    sink_->Fail(error);
  }

  static DWORD WINAPI CompletionThread(void* self) {
    static_cast<IocpBackend*>(self)->WaitForCompletions();
    return 0;
  }

  // Completion thread: marks slots completed and wakes the loop, until Close
  // posts kStopKey.
  void WaitForCompletions() {
    OVERLAPPED_ENTRY entries[kEntriesPerWait];
    for (;;) {
      ULONG count = 0;
      if (!GetQueuedCompletionStatusEx(port_.get(), entries, kEntriesPerWait, &count, INFINITE, FALSE)) {
        thread_error_ = GetLastError();  // OnWake reports it
        sink_->Wake();
        return;
      }
      bool stop = false;
      bool completed = false;
      for (ULONG i = 0; i < count; i++) {
        if (entries[i].lpCompletionKey == kStopKey) {
          stop = true;
        } else {
          SlotOf(entries[i].lpOverlapped)->completed.store(true, std::memory_order_release);
          completed = true;
        }
      }
      if (completed) sink_->Wake();
      if (stop) return;
    }
  }

  static Slot* SlotOf(OVERLAPPED* overlapped) { return CONTAINING_RECORD(overlapped, Slot, overlapped); }

  // Loop thread. Cancels every posted receive, waits until each has come back
  // (whatever its status: wine answers closesocket with STATUS_HANDLES_CLOSED
  // where Windows says cancelled), then closes the socket and the port. The
  // buffers are freed with the backend, once nothing can write them.
  void Shutdown() {
    if (closing_) return;
    closing_ = true;
    if (!thread_) return;  // Open failed: nothing was ever posted
    // Cancel first, then stop the thread, so that cancellations queued ahead
    // of kStopKey are taken by the thread and Drain takes the rest. (Measured
    // under wine: in this order every receive was back when the thread
    // stopped; cancelled after it had stopped, none came back before
    // closesocket.)
    CancelIoEx(reinterpret_cast<HANDLE>(socket_.get()), nullptr);  // ERROR_NOT_FOUND: nothing posted
    // From here on only this thread takes completions from the port.
    PostQueuedCompletionStatus(port_.get(), 0, kStopKey, nullptr);
    WaitForSingleObject(thread_.get(), INFINITE);
    thread_.reset();
    uint32_t outstanding = 0;
    for (uint32_t i = 0; i < posted_; i++)
      if (!slots_[Index(handing_ + i)].completed.load(std::memory_order_acquire)) outstanding++;
    outstanding = Drain(outstanding);
    socket_.reset();  // completes whatever CancelIoEx did not reach
    if (outstanding > 0) outstanding = Drain(outstanding);
    if (outstanding > 0) {
      // The kernel may still write these buffers: leak them, never free them.
      slots_.release();
      data_.release();
      control_.release();
    }
    port_.reset();
    posted_ = 0;  // what Stats reports from now on
  }

  // Loop thread, after the completion thread has stopped: takes completions
  // from the port until `outstanding` receives have come back or
  // kCloseWaitMs passed. Returns how many are still out.
  uint32_t Drain(uint32_t outstanding) {
    ULONGLONG deadline = GetTickCount64() + kCloseWaitMs;
    OVERLAPPED_ENTRY entries[kEntriesPerWait];
    while (outstanding > 0) {
      ULONGLONG now = GetTickCount64();
      if (now >= deadline) break;
      ULONG count = 0;
      if (!GetQueuedCompletionStatusEx(port_.get(), entries, kEntriesPerWait, &count,
                                       static_cast<DWORD>(deadline - now), FALSE)) {
        if (GetLastError() == WAIT_TIMEOUT) continue;  // the deadline ends the loop
        break;
      }
      for (ULONG i = 0; i < count; i++) {
        if (entries[i].lpCompletionKey != kSocketKey) continue;
        SlotOf(entries[i].lpOverlapped)->completed.store(true, std::memory_order_relaxed);
        outstanding--;
      }
    }
    return outstanding;
  }

  Sink* const sink_;
  bool ipv6_ = false;
  uint32_t ring_size_ = 0;
  uint32_t buffer_size_ = 0;
  size_t control_size_ = 0;
  UniqueSocket socket_;
  UniqueHandle port_;
  UniqueHandle thread_;  // the completion thread, until Close has joined it
  LPFN_WSARECVMSG recvmsg_ = nullptr;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint8_t[]> data_;     // ring_size_ payload buffers
  std::unique_ptr<uint8_t[]> control_;  // ring_size_ control buffers
  std::vector<Completion> batch_;       // what one Deliver hands over
  uint32_t head_ = 0;
  uint32_t handing_ = 0;
  uint32_t posted_ = 0;
  uint32_t peak_posted_ = 0;
  bool closing_ = false;
  bool failed_ = false;
  std::atomic<DWORD> thread_error_{0};  // set once if the completion thread gave up
};

}  // namespace

std::unique_ptr<Backend> NewIocpBackend(Sink* sink) { return std::make_unique<IocpBackend>(sink); }

}  // namespace dgram_ring
