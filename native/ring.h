// The native contract: what every OS backend implements and what the N-API
// binding (addon.cc) offers it. DESIGN.md §2 explains the model: a ring of
// `ring_size` slots, each free, posted (the kernel may write it) or completed;
// credits from JS decide how many may be posted.
//
// Threads: unless a comment says otherwise, every method here is called on the
// JS loop thread of the environment that created the socket.
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
};

// What a backend knows about its ring that the binding cannot count itself.
struct BackendStats {
  uint32_t posted = 0;       // buffers the kernel may fill right now
  uint32_t peak_posted = 0;  // highest `posted` so far
  int64_t kernel_drops = -1;  // the OS's drop counter for the socket; -1 = none
};

// Implemented by the binding; a backend reports to it.
class Sink {
 public:
  virtual ~Sink() = default;
  // How many more datagrams JS will take (its latest grant less what has been
  // delivered since). A backend posts at most this many buffers.
  virtual uint32_t Credits() const = 0;
  // Hands a batch to JS: one crossing for all `count` items, payloads copied
  // into one slab. May re-enter the backend (OnCredits, Close) before it
  // returns. Never called with count == 0.
  virtual void Deliver(const Completion* items, size_t count) = 0;
  // The ring cannot go on (a receive failed with a non-per-packet error). The
  // socket stays open until JS closes it; the backend posts nothing more.
  virtual void Fail(SysError error) = 0;
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
  // Stops posting, cancels what is posted and waits for the kernel to give
  // every buffer back; then closes the socket and calls `done` on the loop
  // thread (possibly before Close returns). No Deliver or Fail after Close is
  // called. Called at most once. Must not depend on OnWake: at environment
  // teardown Wake no longer reaches the loop.
  virtual void Close(std::function<void()> done) = 0;
};

// The backends this build has, fastest first (what `backend: 'auto'` tries).
std::vector<std::string> BackendNames();

// A backend by name, or nullptr if this build has none of that name. `loop`
// is the environment's libuv loop (backends that poll file descriptors use it).
std::unique_ptr<Backend> CreateBackend(const std::string& name, Sink* sink, uv_loop_s* loop);

// One constructor per backend file; CreateBackend (addon.cc) picks among them.
#ifdef _WIN32
std::unique_ptr<Backend> NewIocpBackend(Sink* sink);  // backend_iocp.cc
#else
std::unique_ptr<Backend> NewMmsgBackend(Sink* sink, uv_loop_s* loop);  // backend_mmsg.cc
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_RING_H_
