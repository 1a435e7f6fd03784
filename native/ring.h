// The native contract: what every OS backend implements and what the N-API
// binding (addon.cc) offers it. ARCHITECTURE.md §2 explains the model: a ring of
// `ring_size` slots, each free, posted (the kernel may write it) or completed;
// credits from JS decide how many may be posted.
//
// Threads: unless a comment says otherwise, every method here is called on the
// JS loop thread of the environment that created the socket.
//
// Lifetime (who owns what while closing):
// - The binding's Ring (addon.cc) owns the Backend; the Backend owns the
//   socket, the slots and any thread or loop handle of its own. The JS
//   RingSocket object points at the Ring; the Ring points back at it until the
//   object is collected (Orphan) or the environment tears down.
// - Open: the JS object is held strongly while JS has granted credits (a
//   consumer waits) and from close() until its callback has run, so a pending
//   close always settles, whatever the garbage collector does.
// - Close runs in one of three ways, all ending in Ring::Closed on the loop
//   thread: close() from JS (kDrain, or kDiscard for destroy()); the JS object
//   collected (kDiscard, no callback); environment teardown (kDiscard, no JS
//   may run, and a kDrain under way is turned into kDiscard). Until `done`
//   the Backend may still own buffers the kernel writes: it frees none of
//   them before the kernel has given each back (iocp: the last cancellation
//   completed and the process's completion thread done with the socket,
//   IocpPort::Stopped; io_uring: the multishot receive's last completion
//   reaped; recvmmsg: nothing is with the kernel between calls).
// - The wake function (a threadsafe function) is released in Ring::Closed;
//   the Ring is deleted once it is closed and the wake function finalized,
//   whichever comes last. Node may call the wake callback with env == NULL
//   for wakes still queued at finalization, after the finalizer ran: that
//   call must not touch the Ring.
// - A backend thread never touches the Ring except through Sink::Wake, and
//   is joined before the slots are freed. iocp's completion thread is the
//   process's, shared by every socket of every environment (iocp_port.h): it
//   never touches the Ring at all, only the socket's registration, its
//   slots' completion flags and its uv_async_t; the slots are freed once it
//   has said it is done with the socket, and the thread itself frees the
//   port and returns when the process's last iocp socket has closed.
#ifndef DGRAM_RING_RING_H_
#define DGRAM_RING_RING_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct uv_loop_s;

namespace dgram_ring {

class Slab;  // slab.h
struct SendBatch;  // send.h

// A multicast group to join (Options::multicast): numeric addresses of the
// socket's family, validated by lib/socket.ts.
struct MulticastJoin {
  std::string group;
  std::string source;             // source-specific when not empty
  std::string interface_address;  // IPv4: the interface by its address; empty = by index
  std::string interface_name;     // by name (if_nametoindex); empty = by index
  uint32_t interface_index = 0;   // 0 = the OS picks (by route)
};

// What to open. Validated by lib/socket.ts before it gets here.
struct Options {
  bool ipv6 = false;        // AF_INET6 rather than AF_INET
  bool raw = false;         // SOCK_RAW (whole IP packets; needs privilege) rather than SOCK_DGRAM
  int protocol = 0;         // IP protocol of a raw socket (IPPROTO_ICMP, …); 0 for UDP
  std::string address;      // numeric bind address; empty = the wildcard
  uint16_t port = 0;         // ignored for raw sockets
  uint32_t ring_size = 256;     // slots, 1..65536
  uint32_t buffer_size = 2048;  // payload bytes a slot, 1..65535
  int32_t recv_buffer_size = 0;  // SO_RCVBUF; 0 = the OS default
  bool reuse_addr = false;
  bool reuse_port = false;
  bool ipv6_only = false;
  bool thread = false;  // a receive thread fills the ring while JS runs (POSIX backend)
  uint32_t linger_us = 0;  // with thread: how long it may hold a batch before waking JS (≤ 1 s)
  bool coalesce = false;  // a buffer may hold several datagrams of one flow (Linux UDP_GRO, Windows URO)
  bool ttl = false;        // IP_RECVTTL / IPV6_RECVHOPLIMIT → Completion::ttl
  bool tos = false;        // IP_RECVTOS / IPV6_RECVTCLASS → Completion::tos
  bool timestamp = false;  // SO_TIMESTAMPNS → Completion::timestamp_ns
  std::vector<MulticastJoin> multicast;  // joined after bind
  // With reuse_port: after bind, attach to the port's reuseport group a
  // classic BPF program (SO_ATTACH_REUSEPORT_CBPF) that picks one of the
  // group's first `spread_over` sockets, in join order, at random for each
  // datagram, so that even one flow is spread over them. 0 = the kernel's own
  // flow hash. Linux only (lib/socket.ts refuses it elsewhere).
  uint32_t spread_over = 0;
};

// A system failure: a negative libuv-style error number (what Node's
// util.getSystemErrorName() names: -errno on POSIX, UV_E* on Windows) and the
// call that failed. code == 0 means success.
struct SysError {
  int code = 0;
  const char* syscall = "";
  explicit operator bool() const { return code != 0; }
};

// Bits of Completion::flags; JS reads them from the batch table (datagram.ts).
enum DatagramFlag : uint32_t {
  kTruncated = 1u << 0,         // MSG_TRUNC / WSAEMSGSIZE: data is a prefix
  kControlTruncated = 1u << 1,  // MSG_CTRUNC
  kBroadcast = 1u << 2,         // only meaningful with kHasBroadcastInfo
  kMulticast = 1u << 3,         // only meaningful with kHasBroadcastInfo
  kRemoteIPv6 = 1u << 4,        // remote_addr holds 16 bytes, else 4
  kHasLocal = 1u << 5,          // local_addr and interface_index are set
  kLocalIPv6 = 1u << 6,         // local_addr holds 16 bytes, else 4
  kHasBroadcastInfo = 1u << 7,  // the OS told whether it was broadcast/multicast
  kHasTtl = 1u << 8,            // Completion::ttl is set
  kHasTos = 1u << 9,            // Completion::tos is set
  kHasTimestamp = 1u << 10,     // Completion::timestamp_ns is set
};

// One completed receive, as a backend hands it over. `data` stays valid only
// until Sink::Deliver returns; the slot is free again after that.
struct Completion {
  const uint8_t* data = nullptr;
  uint32_t length = 0;  // bytes in data, at most buffer_size
  uint32_t flags = 0;   // DatagramFlag bits
  uint32_t interface_index = 0;
  uint16_t remote_port = 0;
  uint8_t remote_addr[16] = {};  // network byte order
  uint8_t local_addr[16] = {};   // network byte order (destination address)
  // UDP_GRO / UDP_COALESCED_INFO: the buffer holds datagrams of this size
  // back to back (the last may be shorter); 0 = one datagram. Backends split such a buffer
  // (coalesce.h) before Sink::Deliver, which never sees it set.
  uint32_t segment_size = 0;
  uint8_t ttl = 0;            // IPv4 TTL / IPv6 hop limit (kHasTtl)
  uint8_t tos = 0;            // IPv4 TOS / IPv6 traffic class, ECN in the low two bits (kHasTos)
  uint64_t timestamp_ns = 0;  // kernel receive time, ns since the epoch (kHasTimestamp)
};

// What a backend knows about its ring that the binding cannot count itself.
struct BackendStats {
  uint32_t posted = 0;       // buffers the kernel may fill right now
  uint32_t peak_posted = 0;  // highest `posted` so far
  // The OS's drop counter for the socket, accumulated in 64 bits (the
  // kernel's may be 32: see DropCounter); -1 = the OS keeps none.
  int64_t kernel_drops = -1;
  // Datagrams taken off the socket while closing with CloseMode::kDiscard and
  // thrown away: nothing would have read them.
  uint64_t discarded = 0;
  // Receive buffers that held more than one datagram (Options::coalesce).
  uint64_t coalesced = 0;
};

// How Close treats what the kernel holds when it is called.
enum class CloseMode {
  // Delivered through Sink::Deliver before `done` (as many batches as it
  // takes, credits notwithstanding): a graceful close loses nothing that
  // reached the socket. Datagrams arriving after the call are not waited
  // for: the kernel drops them (counted where it counts) or they are
  // discarded.
  kDrain,
  // Read off the socket and counted in BackendStats::discarded: nothing will
  // read them (destroy(), unsubscribe, garbage collection, teardown).
  kDiscard,
};

// Implemented by the binding; a backend reports to it.
class Sink {
 public:
  virtual ~Sink() = default;
  // How many more datagrams JS will take (its latest grant less what has been
  // delivered since). A backend posts at most this many buffers.
  virtual uint32_t Credits() const = 0;
  // Hands a batch to JS: one crossing for all `count` items. If `slab` is not
  // null, every payload lies in it (the backend received into it: slab.h)
  // and the binding may lend that memory to JS, taking a reference, instead
  // of copying the payloads into one buffer; the backend never writes those
  // bytes again either way. May re-enter the backend (OnCredits, Close)
  // before it returns. Never called with count == 0.
  virtual void Deliver(const Completion* items, size_t count, Slab* slab) = 0;
  // The ring cannot go on (a receive failed with an error that describes the
  // socket). The socket stays open until JS closes it; the backend posts
  // nothing more.
  virtual void Fail(SysError error) = 0;
  // A receive failed for a reason that does not describe the socket (ENOMEM,
  // ENOBUFS): counted and reported; the ring goes on, and the next readable
  // event tries again.
  virtual void Warn(SysError error) = 0;
  // Any thread. Makes Backend::OnWake run on the loop thread soon; calls made
  // before it runs may be coalesced into one.
  virtual void Wake() = 0;
};

// One socket and its ring. Created by CreateBackend; destroyed by the binding
// on the loop thread after Open failed or once Close's `done` ran (possibly
// inside `done`: call it last), never inside Sink::Deliver.
class Backend {
 public:
  virtual ~Backend() = default;
  // The name users pass as `backend` and read back from `stream.backend`.
  virtual const char* Name() const = 0;
  // Creates, configures and binds the socket. Posts nothing yet.
  virtual SysError Open(const Options& options) = 0;
  // The bound address (getsockname). `family` is 4 or 6.
  virtual SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const = 0;
  // Credits changed (JS granted more, or fewer): post or stop accordingly.
  virtual void OnCredits() = 0;
  // Runs after Sink::Wake, on the loop thread.
  virtual void OnWake() = 0;
  virtual BackendStats Stats() const = 0;
  // The socket's receive queue in bytes, as the OS reports SO_RCVBUF (Linux
  // reports twice what was asked: its bookkeeping included); 0 if unknown.
  virtual int ReceiveBufferSize() const = 0;
  // Whether the backend's own loop handles keep the event loop alive while
  // it waits for datagrams (stream.ref()/unref()). Default: they do.
  virtual void SetRef(bool keep_alive) = 0;
  // Stops posting, treats what the kernel holds as `mode` says, cancels what
  // is posted and lets the kernel give every buffer back; then closes the
  // socket and calls `done` on the loop thread (possibly before Close
  // returns). The loop thread never blocks waiting for the kernel. Deliver
  // may still be called until `done` with kDrain, never with kDiscard; Fail
  // never after Close. Called once, or a second time with kDiscard while a
  // kDrain close is under way (environment teardown: no JS may run), which
  // discards the rest. A kDiscard close must not depend on OnWake: at
  // environment teardown Wake no longer reaches the loop (the loop itself
  // still runs until `done`). May be called inside Sink::Deliver: then the
  // slots being delivered stay untouched until Deliver returns.
  virtual void Close(CloseMode mode, std::function<void()> done) = 0;

  // ---- Sending (send.h) ----
  // Sending goes out of this socket (same port), on the loop thread, never
  // through the ring: the receive thread of `thread: true` never sends.
  //
  // Sends rows of `batch` (send.h's SendRows: results written in the table;
  // returns the rows done, fewer when the socket's buffer is full). Only
  // before Close.
  virtual uint32_t Send(const SendBatch& batch) = 0;
  // Calls `ready` once on the loop thread when the socket may take more
  // (writable, or its poll failed: the next Send says how), unless Close is
  // called first, which forgets it. One waiter at a time: a second call
  // replaces the first. Returns 0, or UV_ENOTSUP where the backend cannot
  // watch for writability (iocp: the caller retries on a timer), or another
  // negative libuv error.
  virtual int WaitWritable(std::function<void()> ready) = 0;
};

// The backends this build has, fastest first (what `backend: 'auto'` tries).
std::vector<std::string> BackendNames();

// Why a backend of this build cannot run in this process (a short sentence:
// "io_uring_setup failed with EPERM (blocked by seccomp?)"), or "" if it can.
// Checked once a process. `auto` skips such a backend.
std::string BackendUnavailable(const std::string& name);

// A backend by name, or nullptr if this build has none of that name. `loop`
// is the environment's libuv loop (backends that poll file descriptors use it).
std::unique_ptr<Backend> CreateBackend(const std::string& name, Sink* sink, uv_loop_s* loop);

// One constructor per backend file; CreateBackend (addon.cc) picks among them.
#ifdef _WIN32
std::unique_ptr<Backend> NewIocpBackend(Sink* sink, uv_loop_s* loop);  // backend_iocp.cc
#else
std::unique_ptr<Backend> NewMmsgBackend(Sink* sink, uv_loop_s* loop);  // backend_mmsg.cc
#endif
#ifdef __linux__
std::unique_ptr<Backend> NewUringBackend(Sink* sink, uv_loop_s* loop);  // backend_uring.cc
#endif
#ifdef DGRAM_RING_FAULTS
// The sanitizer build's test double (test/native/backend_sync_close.cc), by
// the name "sync-close": never in BackendNames(), never picked by 'auto'.
std::unique_ptr<Backend> NewSyncCloseBackend(Sink* sink);
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_RING_H_
