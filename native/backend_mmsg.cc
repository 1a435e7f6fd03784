// POSIX backend: a ring of receive buffers filled by recvmmsg (Linux) or a
// loop of recvmsg (other POSIX systems). Two ways to drive it:
//
// - Loop mode (Options::thread false): the loop thread receives when uv_poll
//   says the socket is readable. "Posted" means offered to the next receive
//   call: min(credits, ring size). With no credits the poll stops and the
//   socket is not read, so the kernel's queue fills and its drop counter
//   counts. Nothing drains the socket while JavaScript runs.
// - Thread mode (Options::thread true): a receive thread keeps the credited
//   slots filled while JavaScript runs (a garbage collection, a slow
//   callback), as iocp's posted receives do, and wakes the loop thread
//   (Sink::Wake), which hands everything filled to JS as one batch.
//
// Threads: everything here runs on the loop thread, except ReceiveLoop and
// what it calls (Receive, ReceiveBatch, Complete: on the receive thread, only
// on slots the loop thread does not own; see "Thread mode" below).
//
// Closing: arrivals are stopped first (posix_socket.h: a filter that drops
// everything, counted by the kernel), the receive thread is joined, and then
// the queue, which now holds exactly what had arrived, is drained into JS
// (kDrain: one batch a wake-up, so JS runs between batches) or read and
// counted as discarded (kDiscard: at once), and the socket is closed. No
// buffer is with the kernel between receive calls: nothing to cancel.
//
// Payload memory (slab.h): before each receive call the slots it offers are
// pointed at the next unused part of the current slab, in order; a filled
// slot holds a reference to its slab until it is delivered or discarded, so
// a batch whose slots share a slab can be lent to JS as it is: the kernel's
// copy is the only one. Control data stays in the ring's own memory.
//
// Coalescing (Options::coalesce, UDP_GRO): each slot is a 64 KiB buffer that
// may hold several datagrams of one flow; a slot is split (coalesce.h) when it
// is handed to JS or counted as discarded, so everything JS and the counters
// see is datagrams. Credits are datagrams: the slots posted are the credits
// divided by the datagrams a slot held in the last delivery, so a receive
// brings about as many datagrams as were granted (one that brought 16 000
// into a 256-datagram stream cost 4× the CPU a datagram, measured). A
// receive may still overshoot by up to kMaxSegments a slot.
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "batch.h"
#include "cmsg.h"
#include "coalesce.h"
#include "faults.h"
#include "posix_socket.h"
#include "ring.h"
#include "send.h"
#include "slab.h"
#include "sockaddr.h"

namespace dgram_ring {

namespace {

// Receive calls per readable event at most, so one busy socket cannot starve
// the rest of the loop.
constexpr int kMaxReadsPerEvent = 16;

// Messages one recvmmsg takes at most (the kernel's UIO_MAXIOV): asking for
// more only makes the call prepare headers the kernel never fills.
constexpr uint32_t kMaxMessagesPerCall = 1024;

class MmsgBackend final : public Backend {
 public:
  MmsgBackend(Sink* sink, uv_loop_t* loop) : sink_(sink), loop_(loop) {}

  ~MmsgBackend() override {
    // Only reached with no poll handle open and no thread: Open failed (and
    // stopped what it had started) or Close finished.
    if (fd_ >= 0) ::close(fd_);
    if (event_fd_ >= 0) ::close(event_fd_);
    ReleaseSlots(0, static_cast<uint32_t>(slot_slabs_.size()));  // a failed ring's filled slots (none if Open failed early)
    free(controls_);
  }

  const char* Name() const override { return kName; }

  SysError Open(const Options& options) override {
    ipv6_ = options.ipv6;
    send_state_.ipv6_socket = options.ipv6;
    ring_size_ = options.ring_size;
    buffer_size_ = options.buffer_size;
    coalesce_ = options.coalesce;
    linger_ = timespec{static_cast<time_t>(options.linger_us / 1000000), static_cast<long>(options.linger_us % 1000000) * 1000};
    slot_capacity_ = coalesce_ ? std::max(buffer_size_, kCoalescedBufferBytes) : buffer_size_;
    if (SysError err = OpenPosixSocket(options, &fd_)) return err;
    if (SysError err = AllocateRing(options)) return err;
    if (options.thread) {
      if (SysError err = StartThread()) return err;
    }
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop_, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      StopThread();
      return SysError{rc, "uv_poll_init"};
    }
    poll_->data = this;
    return SysError{};
  }

  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const override {
    return SocketLocalAddress(fd_, addr, family, port);
  }

  void OnCredits() override {
    if (closing_ || failed_ || poll_ == nullptr) return;
    uint32_t allowance = Allowance();
    if (threaded_) {
      allowance_.store(allowance, std::memory_order_seq_cst);
      Signal();
      // Completions held back for want of credits can go now.
      if (allowance > 0 && filled_.load(std::memory_order_acquire) > 0) sink_->Wake();
    } else if (allowance > 0 && !polling_) {
      polling_ = true;
      int rc = UpdatePoll();
      if (rc != 0) return Stop(SysError{rc, "uv_poll_start"});
    } else if (allowance == 0 && polling_) {
      polling_ = false;
      UpdatePoll();
    }
    peak_posted_ = std::max(peak_posted_, Posted());
  }

  void OnWake() override {
    if (closing_) {
      if (mode_ == CloseMode::kDrain && !finishing_ && !delivering_) DrainBatch();
      return;
    }
    if (!threaded_ || failed_) return;
    for (uint32_t n = transient_errors_.exchange(0); n > 0; n--) {
      sink_->Warn(SysError{last_transient_.load(), kName});
      if (closing_) return;
    }
    if (int error = thread_error_.load()) return Stop(SysError{error, kName});
    DeliverFilled(sink_->Credits());
    if (closing_) ContinueClose();  // JS closed the socket from its batch handler
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

  void SetRef(bool keep_alive) override { SetPollRef(poll_, keep_alive); }

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
    polling_ = false;
    writable_ = nullptr;  // a send waiting for room: JS rejects it (closed)
    UpdatePoll();
    if (!StopArrivals(fd_)) closing_budget_ = ReceiveBufferBudget();
    StopThread();  // from here on only this thread touches the ring
    if (!delivering_) ContinueClose();  // else the delivery under way does, once Deliver returns
  }

 private:
  // The backend's name is also the receive call it makes.
  static constexpr const char* kName =
#ifdef __linux__
      "recvmmsg";
#else
      "recvmsg";
#endif

  // Loop thread. Buffers the kernel may fill now.
  uint32_t Posted() const {
    if (closing_ || failed_) return 0;
    uint32_t allowance = Allowance();
    if (!threaded_) return allowance;
    uint32_t filled = filled_.load(std::memory_order_acquire);
    return allowance > filled ? allowance - filled : 0;
  }

  // Slots the credits pay for now, at most the ring: with coalescing, one a
  // buffer as many datagrams as a slot held in the last delivery. Loop thread.
  uint32_t Allowance() const {
    uint32_t credits = sink_->Credits();
    if (coalesce_) credits = coalesced_.BuffersFor(credits);
    return std::min(credits, ring_size_);
  }

  // Receive thread: slots it may fill now (allowance_ less filled_).
  uint32_t ThreadWant() const {
    uint32_t filled = filled_.load(std::memory_order_seq_cst);
    uint32_t allowance = allowance_.load(std::memory_order_seq_cst);
    return allowance > filled ? allowance - filled : 0;
  }

  SysError AllocateRing(const Options& options) {
    control_size_ = ControlBufferSize(options);
    controls_ = static_cast<uint8_t*>(malloc(control_size_ * ring_size_));
    if (controls_ == nullptr) return SysError{-ENOMEM, "malloc"};
    cutter_ = std::make_unique<SlabCutter>(slot_capacity_, std::min(ring_size_, kMaxMessagesPerCall));
    slot_slabs_.assign(ring_size_, nullptr);
    names_.resize(ring_size_);
    iovecs_.resize(ring_size_);
    completions_.resize(ring_size_);
    if (coalesce_)
      coalesced_.Resize(ring_size_);
    else
      batch_.resize(ring_size_);
#ifdef __linux__
    messages_.resize(ring_size_);
#endif
    for (uint32_t i = 0; i < ring_size_; i++) {
      iovecs_[i].iov_base = nullptr;  // PrepareSlots points it at a slab before each call
      iovecs_[i].iov_len = slot_capacity_;
#ifdef __linux__
      PrepareHeader(&messages_[i].msg_hdr, i);  // once: a call resets only what the kernel writes back
#endif
    }
    return SysError{};
  }

  uint8_t* Control(uint32_t slot) const { return controls_ + slot * control_size_; }

  // Points up to `want` slots from `first` on (wrapping) at unused memory of
  // the current slab, taking a new one when it is used up. Returns how many
  // (fewer at a slab's end; 0 when memory is short). The thread that receives.
  uint32_t PrepareSlots(uint32_t first, uint32_t want) {
    uint32_t count = cutter_->Reserve(want);
    for (uint32_t i = 0; i < count; i++) iovecs_[(first + i) % ring_size_].iov_base = cutter_->Unit(i);
    return count;
  }

  // A receive filled `count` prepared slots from `first` on: each holds a
  // reference to the slab, and that memory is used. The thread that receives.
  void TakeSlots(uint32_t first, uint32_t count) {
    Slab* slab = cutter_->Use(count);
    for (uint32_t i = 0; i < count; i++) slot_slabs_[(first + i) % ring_size_] = slab;
  }

  // The slab all `count` slots from `first` on hold, or nullptr if they span
  // two. Loop thread.
  Slab* CommonSlab(uint32_t first, uint32_t count) const {
    return SameSlabRun(first, count) == count ? slot_slabs_[first] : nullptr;
  }

  // How many of the `count` slots from `first` on hold the same slab as the first (at least 1).
  uint32_t SameSlabRun(uint32_t first, uint32_t count) const {
    Slab* slab = slot_slabs_[first];
    uint32_t run = 1;
    while (run < count && slot_slabs_[(first + run) % ring_size_] == slab) run++;
    return run;
  }

  // Drops the slab references of `count` slots from `first` on (delivered or
  // discarded; any that hold none are skipped), one release a run of slots of
  // the same slab. Loop thread, or whoever owns the ring while it closes.
  void ReleaseSlots(uint32_t first, uint32_t count) {
    Slab* run = nullptr;
    uint32_t length = 0;
    for (uint32_t i = 0; i < count; i++) {
      Slab*& held = slot_slabs_[(first + i) % ring_size_];
      if (held != run) {
        if (run != nullptr) run->Release(length);
        run = held;
        length = 0;
      }
      length++;
      held = nullptr;
    }
    if (run != nullptr) run->Release(length);
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

  // ---- Loop mode ----------------------------------------------------------

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<MmsgBackend*>(handle->data);
    if (self->writable_ && (status < 0 || (events & UV_WRITABLE))) {
      std::function<void()> ready = std::move(self->writable_);
      self->writable_ = nullptr;
      self->UpdatePoll();
      ready();  // may send, close, or wait again
      if (self->closing_ || self->failed_ || !self->polling_) return;
    }
    if (status < 0) return self->Stop(SysError{status, "uv_poll"});
    if (events & UV_READABLE) self->ReadAvailable();
  }

  // The one poll handle of the socket watches what is wanted: readable while
  // receiving in loop mode (polling_), writable while a send waits for room.
  int UpdatePoll() {
    if (poll_ == nullptr) return 0;
    int events = (polling_ ? UV_READABLE : 0) | (writable_ ? UV_WRITABLE : 0);
    if (events == 0) return uv_poll_stop(poll_);
    return uv_poll_start(poll_, events, OnPoll);
  }

 public:
  uint32_t Send(const SendBatch& batch) override { return SendRows(fd_, &send_state_, batch); }

  int WaitWritable(std::function<void()> ready) override {
    if (closing_ || poll_ == nullptr) return UV_EBADF;
    writable_ = std::move(ready);
    int rc = UpdatePoll();
    if (rc != 0) writable_ = nullptr;
    return rc;
  }

 private:

  void ReadAvailable() {
    for (int round = 0; round < kMaxReadsPerEvent; round++) {
      uint32_t want = Posted();
      if (want == 0) break;
      uint32_t asked = 0;
      int count = Receive(want, 0, &asked);
      if (count == 0) break;
      if (count < 0 && IsTransientError(-count)) {
        sink_->Warn(SysError{count, kName});
        if (closing_) return;  // closed from the warning handler: Close went on by itself
        break;
      }
      if (count < 0) return Stop(SysError{count, kName});
      DeliverSlots(0, static_cast<uint32_t>(count));
      if (closing_) return ContinueClose();  // JS closed the socket from its batch handler
      if (failed_) return;
      // A short read emptied the queue: another call would only say EAGAIN.
      if (static_cast<uint32_t>(count) < asked) break;
    }
    OnCredits();  // credits may have run out: stop polling until JS grants more
  }

  // ---- Thread mode --------------------------------------------------------
  // The ring is used in order. The loop thread owns [head_, head_ + filled_):
  // filled, waiting for JS, handed over by Deliver. The receive thread owns
  // the rest and fills it from tail_ = head_ + filled_ on, at most
  // allowance_ − filled_ slots (allowance_ = min(credits, ring size)), then
  // publishes them by adding to filled_ (release) and wakes the loop. The
  // loop thread gives slots back by subtracting from filled_ and signals the
  // thread through event_fd_, as it does when credits change or to stop it.

  SysError StartThread() {
#ifdef __linux__
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (event_fd_ < 0) return SysError{-errno, "eventfd"};
    int rc = pthread_create(&thread_, nullptr, ReceiveThread, this);
    if (rc != 0) return SysError{-rc, "pthread_create"};
    threaded_ = true;
    return SysError{};
#else
    return SysError{-ENOTSUP, "thread"};
#endif
  }

  // Loop thread: wakes the receive thread to look at allowance_, filled_ and
  // stop_ again, if it waits for that (it was out of credits or slots): a
  // thread that waits for datagrams sees the new allowance when they come.
  // (Thread mode costs this one descriptor more.)
  void Signal(bool always = false) {
#ifdef __linux__
    if (!always && !starved_.load(std::memory_order_seq_cst)) return;
    uint64_t one = 1;
    if (event_fd_ >= 0) (void)!write(event_fd_, &one, sizeof one);
#endif
  }

  // Loop thread: stops the receive thread and waits for it (it is in poll or
  // in a non-blocking receive: it returns at once).
  void StopThread() {
    if (!threaded_ || joined_) return;
    stop_.store(true, std::memory_order_release);
    Signal(true);
    pthread_join(thread_, nullptr);
    joined_ = true;
    ::close(event_fd_);  // no one signals a joined thread
    event_fd_ = -1;
  }

  static void* ReceiveThread(void* self) {
    static_cast<MmsgBackend*>(self)->ReceiveLoop();
    return nullptr;
  }

  // Receive thread: fills credited slots as datagrams arrive, until stopped
  // or the socket fails (thread_error_, reported by OnWake).
  //
  // Linger (Options::linger_us): a receive that empties the queue starts a
  // hold. The thread then sleeps, socket unwatched, until the hold's end, and
  // takes what arrived meanwhile before the loop is woken:
  // at low rates, one wake-up and one receive call a linger instead of one of
  // each a burst (measured on a 2-core VM at 50k/s: dgram-ring listen's cost
  // a 200-byte datagram fell from 2.9 to 1.6 µs with 10 ms). Each time, the
  // thread receives until the queue is empty (several calls: a slab holds
  // 64 buffers of 64 KiB), and the loop is woken once. A receive that fills
  // every credited slot starts no hold (the queue may hold more: the loop is
  // woken at once); a signal to stop, or credits taken away, end one.
  // Meanwhile the kernel's receive buffer holds what arrives, as it does
  // during a JS pause in loop mode.
  void ReceiveLoop() {
#ifdef __linux__
    uint32_t tail = 0;
    pollfd fds[2] = {{fd_, POLLIN, 0}, {event_fd_, POLLIN, 0}};
    bool holding = false;
    timespec hold_end{};
    while (!stop_.load(std::memory_order_acquire)) {
      uint32_t want = ThreadWant();
      // Starved: only a Signal (credits, slots given back) lets it go on.
      // Set before the last look at allowance_ and filled_, so a change the
      // loop makes after that look also finds it set and signals.
      if (want == 0) {
        if (holding) {  // nothing more fits: hand over what is held now
          holding = false;
          sink_->Wake();
        }
        starved_.store(true, std::memory_order_seq_cst);
        want = ThreadWant();
      }
      timespec left{};
      if (holding && !TimeLeft(hold_end, &left)) {
        holding = false;
        if (ReceiveAvailable(&tail) == kReceiveFailed) return;
        sink_->Wake();
        continue;
      }
      fds[0].events = want > 0 && !holding ? POLLIN : 0;
      if (ppoll(fds, 2, holding ? &left : nullptr, nullptr) < 0) {
        if (errno == EINTR) continue;
        thread_error_.store(-errno);
        sink_->Wake();
        return;
      }
      starved_.store(false, std::memory_order_relaxed);
      if (fds[1].revents & POLLIN) {
        uint64_t count;
        (void)!read(event_fd_, &count, sizeof count);
      }
      if (holding || fds[0].revents == 0) continue;
      // Credits may have changed while it waited: take only what they allow now.
      // Without a linger, JS is woken after each call, to work while the
      // thread receives more; with one, the thread first takes all there is.
      bool linger = linger_.tv_sec != 0 || linger_.tv_nsec != 0;
      int result = linger ? ReceiveAvailable(&tail) : ReceiveInto(ThreadWant(), &tail);
      if (result == kReceiveFailed) return;
      if (result == kReceiveNone) continue;
      if (linger && result == kReceiveDrained) {
        holding = true;
        hold_end = Later(linger_);
      } else {
        sink_->Wake();
      }
    }
#endif
  }

  enum ReceiveResult { kReceiveFailed, kReceiveNone, kReceiveDrained, kReceiveFull };

  // Receive thread: ReceiveInto until the queue is empty (kReceiveDrained) or
  // no credited slot is left (kReceiveFull): a call takes at most what is left
  // of the ring before it wraps, of kMaxMessagesPerCall and of the slab (64
  // slots of 64 KiB in a 4 MiB slab), so one may not be enough.
  ReceiveResult ReceiveAvailable(uint32_t* tail) {
    bool got = false;
    for (;;) {
      ReceiveResult result = ReceiveInto(ThreadWant(), tail);
      if (result == kReceiveFailed || result == kReceiveDrained) return result;
      if (result == kReceiveNone) return got ? kReceiveDrained : kReceiveNone;
      got = true;
      if (ThreadWant() == 0) return kReceiveFull;
    }
  }

  // Receive thread: now + `span` on the monotonic clock.
  static timespec Later(timespec span) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    long nsec = now.tv_nsec + span.tv_nsec;
    return timespec{now.tv_sec + span.tv_sec + nsec / 1000000000, nsec % 1000000000};
  }

  // Receive thread: the time until `end` in *left; false once it has come.
  static bool TimeLeft(timespec end, timespec* left) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t{end.tv_sec} - now.tv_sec) * 1000000000 + (end.tv_nsec - now.tv_nsec);
    if (ns <= 0) return false;
    *left = timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    return true;
  }

  // Receive thread: one receive into up to `want` slots from *tail on, which
  // are then published to the loop (not woken). kReceiveDrained: fewer came
  // than were asked for, so the queue was empty; kReceiveFailed: the thread
  // must end (thread_error_ set, loop woken).
  ReceiveResult ReceiveInto(uint32_t want, uint32_t* tail) {
    if (want == 0) return kReceiveNone;
    uint32_t asked = 0;
    int count = Receive(want, *tail, &asked);
    if (count < 0 && IsTransientError(-count)) {
      last_transient_.store(count);
      transient_errors_.fetch_add(1);
      sink_->Wake();
      return kReceiveNone;
    }
    if (count < 0) {
      thread_error_.store(count);
      sink_->Wake();
      return kReceiveFailed;
    }
    if (count == 0) return kReceiveNone;
    *tail = (*tail + static_cast<uint32_t>(count)) % ring_size_;
    filled_.fetch_add(static_cast<uint32_t>(count), std::memory_order_release);
    return static_cast<uint32_t>(count) < asked ? kReceiveDrained : kReceiveFull;
  }

  // Loop thread: hands at most `limit` filled slots to JS, in order: payloads
  // worth lending one batch for each run of slots cut from one slab, so that
  // every batch can be lent its slab (the thread's receives run on across
  // slabs, and one batch of two would be copied); sparse ones, copied anyway,
  // as one. Stops when JS closes the socket or it fails meanwhile: closing
  // goes on from there.
  void DeliverFilled(uint32_t limit) {
    uint32_t count = std::min(filled_.load(std::memory_order_acquire), limit);
    bool lend = count > 0 && WorthLendingSlots(completions_.data(), ring_size_, head_, count, slot_capacity_);
    bool closing = closing_;
    CloseMode mode = mode_;
    while (count > 0) {
      uint32_t run = lend ? SameSlabRun(head_, count) : count;
      DeliverSlots(head_, run);
      head_ = (head_ + run) % ring_size_;
      // Delivery used credits: the thread may fill only what is left of them
      // (JS's next grant raises it again, through OnCredits).
      if (!closing_ && !failed_) allowance_.store(Allowance(), std::memory_order_seq_cst);
      filled_.fetch_sub(run, std::memory_order_seq_cst);
      if (!closing_) Signal();
      count -= run;
      if (failed_ || closing_ != closing || mode_ != mode) return;
    }
  }

  // ---- Both modes ---------------------------------------------------------

  // Loop thread: Deliver for `count` completed slots from `first` on.
  // Delivery may re-enter Close: it then waits for this to return.
  void DeliverSlots(uint32_t first, uint32_t count) {
    Slab* slab = CommonSlab(first, count);
    const Completion* items = &completions_[first];
    size_t datagrams = count;
    if (coalesce_) {
      items = coalesced_.Split(completions_.data(), first, count, buffer_size_, &datagrams);
      coalesced_.Received(count, datagrams);
    } else if (first + count > ring_size_) {  // wraps: one batch all the same
      for (uint32_t i = 0; i < count; i++) batch_[i] = completions_[(first + i) % ring_size_];
      items = batch_.data();
    }
    delivering_ = true;
    sink_->Deliver(items, datagrams, slab);
    delivering_ = false;
    ReleaseSlots(first, count);
  }

  // The datagrams `count` slots from `first` on hold. Loop thread, or the
  // receive thread on slots it owns.
  uint64_t Datagrams(uint32_t first, uint32_t count) const {
    return coalesce_ ? coalesced_.Datagrams(completions_.data(), first, count) : count;
  }

  // After Close, once no delivery is under way.
  void ContinueClose() {
    if (mode_ == CloseMode::kDrain)
      sink_->Wake();  // DrainBatch, from the loop, so that JS runs first
    else
      Finish();
  }

  // Where no filter stops arrivals, a close reads at most what the receive
  // buffer can hold (the smallest datagram still takes a few hundred bytes).
  int64_t ReceiveBufferBudget() const { return std::max<int64_t>(ring_size_, ReceiveBufferSize() / 128); }

  // One batch of the drain to JS: the slots the receive thread had filled,
  // then what the queue held; the next on the next wake-up, until the queue
  // is empty. Delivery may re-enter Close (destroy() during close()).
  void DrainBatch() {
    if (filled_.load(std::memory_order_acquire) > 0) {
      DeliverFilled(ring_size_);
    } else {
      int count = closing_budget_ > 0 ? Receive(ClosingBatch(), 0) : 0;
      if (count <= 0) return Finish();  // empty (or failing): nothing more to deliver
      closing_budget_ -= count;
      DeliverSlots(0, static_cast<uint32_t>(count));
    }
    if (mode_ == CloseMode::kDiscard) return Finish();
    sink_->Wake();
  }

  uint32_t ClosingBatch() const { return static_cast<uint32_t>(std::min<int64_t>(ring_size_, closing_budget_)); }

  // Throws away what the receive thread had filled and what the queue still
  // holds, counted; then reads the drop counter one last time and closes.
  void Finish() {
    if (finishing_) return;
    finishing_ = true;
    uint32_t filled = filled_.exchange(0);
    discarded_ += Datagrams(head_, filled);
    ReleaseSlots(head_, filled);
    while (closing_budget_ > 0) {
      int count = Receive(ClosingBatch(), 0);
      if (count <= 0) break;
      discarded_ += Datagrams(0, static_cast<uint32_t>(count));
      ReleaseSlots(0, static_cast<uint32_t>(count));
      closing_budget_ -= count;
    }
    KernelDrops();  // the last reading: from here on no datagram is ours
    fd_closed_ = true;
    // uv_close stops the poll handle and forgets the descriptor at once (its
    // callback only frees the handle), so the socket is closed right after
    // the last reading: what arrives until then is dropped and counted by
    // the kernel but no longer by us, and a loop turn of that is many
    // datagrams when the port's reuseport group goes on receiving.
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
      auto* self = static_cast<MmsgBackend*>(handle->data);
      delete reinterpret_cast<uv_poll_t*>(handle);
      self->poll_ = nullptr;
      self->done_();  // last: the binding may free this backend inside it
    });
    ::close(fd_);
    fd_ = -1;
  }

  // Fills completions_ for the slots from `first` on (up to the ring's end on
  // Linux, wrapping elsewhere; at most kMaxMessagesPerCall, and what the slab
  // has left: *asked says how many were offered) and returns how many, 0 when
  // nothing is queued, or a negative errno for an error that is not about one
  // earlier packet.
  int Receive(uint32_t want, uint32_t first, uint32_t* asked = nullptr) {
    want = std::min(want, kMaxMessagesPerCall);
#ifdef __linux__
    want = std::min(want, ring_size_ - first);  // the next call goes on from slot 0
#endif
    want = PrepareSlots(first, want);
    if (asked != nullptr) *asked = want;
    if (want == 0) return -ENOMEM;
    for (;;) {
      int injected = 0;
      int count = Fault(FaultSite::kRecv, &injected) ? -injected : ReceiveBatch(want, first);
      if (count > 0) TakeSlots(first, static_cast<uint32_t>(count));
      if (count >= 0) return count;
      if (-count == EAGAIN || -count == EWOULDBLOCK) return 0;
      if (-count == EINTR || IsPerPacketError(-count)) continue;
      return count;
    }
  }

#ifdef __linux__
  // One call for `want` slots from `first` on (never past the ring's end),
  // over the headers AllocateRing prepared.
  int ReceiveBatch(uint32_t want, uint32_t first) {
    for (uint32_t slot = first; slot < first + want; slot++) {
      msghdr& header = messages_[slot].msg_hdr;
      header.msg_namelen = sizeof names_[slot];
      header.msg_controllen = control_size_;
      header.msg_flags = 0;
    }
    // MSG_TRUNC: a coalesced buffer's length on the wire, to count every
    // datagram it held even if the buffer was too small.
    int count = recvmmsg(fd_, &messages_[first], want, MSG_DONTWAIT | (coalesce_ ? MSG_TRUNC : 0), nullptr);
    if (count < 0) return -errno;
    for (uint32_t slot = first; slot < first + static_cast<uint32_t>(count); slot++)
      Complete(slot, messages_[slot].msg_hdr, messages_[slot].msg_len);
    return count;
  }
#else
  // One datagram a call, but still handed to JS as one batch.
  int ReceiveBatch(uint32_t want, uint32_t first) {
    uint32_t count = 0;
    for (; count < want; count++) {
      uint32_t slot = (first + count) % ring_size_;
      msghdr header;
      PrepareHeader(&header, slot);
      ssize_t length = recvmsg(fd_, &header, MSG_DONTWAIT);
      if (length < 0) return count > 0 ? static_cast<int>(count) : -errno;
      Complete(slot, header, static_cast<size_t>(length));
    }
    return static_cast<int>(count);
  }
#endif

  // Receive thread in thread mode (on a slot it owns), else the loop thread.
  void Complete(uint32_t slot, const msghdr& header, size_t length) {
    Completion& out = completions_[slot];
    out.data = static_cast<const uint8_t*>(iovecs_[slot].iov_base);
    out.length = static_cast<uint32_t>(std::min<size_t>(length, slot_capacity_));
    out.flags = 0;
    out.interface_index = 0;
    out.segment_size = 0;
    if (header.msg_flags & MSG_TRUNC) out.flags |= kTruncated;
    if (header.msg_flags & MSG_CTRUNC) out.flags |= kControlTruncated;
    int family = 4;
    if (ReadSockaddr(names_[slot], header.msg_namelen, out.remote_addr, &family, &out.remote_port) && family == 6)
      out.flags |= kRemoteIPv6;
    DecodeControl(Control(slot), header.msg_controllen, ipv6_, &out);
    if (coalesce_) coalesced_.Filled(slot, out, static_cast<uint32_t>(std::min<size_t>(length, UINT32_MAX)));
  }

  // Loop thread. The kernel's drop counter, accumulated in 64 bits; -1 where
  // the OS has none. After the socket is closed, its last reading.
  int64_t KernelDrops() const { return fd_closed_ ? drops_.Last() : drops_.Read(fd_); }

  // Loop thread: the ring cannot go on. The receive thread has stopped (it
  // reported the error) or is stopped here.
  void Stop(SysError error) {
    failed_ = true;
    polling_ = false;
    UpdatePoll();  // a send waiting for room still waits
    StopThread();
    sink_->Fail(error);
  }

  Sink* const sink_;
  uv_loop_t* const loop_;
  int fd_ = -1;
  bool ipv6_ = false;
  uint32_t ring_size_ = 0;
  uint32_t buffer_size_ = 0;    // payload bytes a datagram keeps
  bool coalesce_ = false;
  uint32_t slot_capacity_ = 0;  // payload bytes a slot: buffer_size_, or a coalescing buffer's
  size_t control_size_ = 0;
  uint8_t* controls_ = nullptr;  // ring_size_ control buffers of control_size_ bytes
  std::unique_ptr<SlabCutter> cutter_;  // payload memory (slabs outlive the backend while JS views them)
  std::vector<Slab*> slot_slabs_;   // a filled slot's slab (one reference each), else nullptr
  std::vector<sockaddr_storage> names_;
  std::vector<iovec> iovecs_;
#ifdef __linux__
  std::vector<mmsghdr> messages_;  // the thread's in thread mode, until joined
#endif
  std::vector<Completion> completions_;  // one a slot
  std::vector<Completion> batch_;        // a batch that wraps around the ring, in order
  CoalescedRing coalesced_;              // coalescing: wire lengths, split datagrams, counters
  uv_poll_t* poll_ = nullptr;  // on the heap: libuv frees it only in its close callback
  bool polling_ = false;  // receiving in loop mode: the poll watches for readable
  std::function<void()> writable_;  // a send waiting for room: the poll watches for writable
  SendState send_state_;
  bool closing_ = false;
  bool failed_ = false;
  bool delivering_ = false;  // inside Sink::Deliver: the slots are JS's until it returns
  CloseMode mode_ = CloseMode::kDrain;
  bool finishing_ = false;  // Finish ran: the socket is being closed
  bool fd_closed_ = false;  // no more readings of the drop counter
  // Datagrams a close may still read: unbounded where a filter stops
  // arrivals, else what the receive buffer can hold.
  int64_t closing_budget_ = INT64_MAX;
  uint32_t peak_posted_ = 0;
  uint64_t discarded_ = 0;
  mutable SocketDrops drops_;
  std::function<void()> done_;
  // Thread mode.
  bool threaded_ = false;
  bool joined_ = false;
  pthread_t thread_{};
  int event_fd_ = -1;
  uint32_t head_ = 0;                     // loop thread: the oldest filled slot
  std::atomic<uint32_t> allowance_{0};    // loop → thread: min(credits, ring size)
  std::atomic<uint32_t> filled_{0};       // filled, not yet handed to JS
  std::atomic<bool> stop_{false};
  std::atomic<bool> starved_{false};      // thread → loop: waiting for a Signal
  std::atomic<int> thread_error_{0};      // thread → loop: the error that ended it
  timespec linger_{};                      // how long the thread may hold what it received
  std::atomic<uint32_t> transient_errors_{0};
  std::atomic<int> last_transient_{0};
};

}  // namespace

std::unique_ptr<Backend> NewMmsgBackend(Sink* sink, uv_loop_s* loop) {
  return std::make_unique<MmsgBackend>(sink, loop);
}

}  // namespace dgram_ring
