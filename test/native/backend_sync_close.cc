// A backend double for the sanitizer build (scripts/test-asan.sh compiles it
// in with DGRAM_RING_FAULTS): no socket, and a Close that does what the iocp
// backend's cancellations do — queue a wake-up from the "completion" of the
// cancelled receives — and then calls `done` at once. At environment
// teardown that leaves a wake-up queued in a threadsafe function whose Ring
// is already closed: test/teardown.test.mjs shows the binding never touches
// the freed Ring when Node empties that queue.
#include <cstring>

#include <cerrno>

#include "../../native/ring.h"
#include "../../native/send.h"

namespace dgram_ring {

namespace {

class SyncCloseBackend final : public Backend {
 public:
  explicit SyncCloseBackend(Sink* sink) : sink_(sink) {}
  const char* Name() const override { return "sync-close"; }
  SysError Open(const Options&) override { return SysError{}; }
  SysError LocalAddress(uint8_t addr[16], int* family, uint16_t* port) const override {
    memset(addr, 0, 16);
    addr[0] = 127;
    addr[3] = 1;
    *family = 4;
    *port = 0;
    return SysError{};
  }
  void OnCredits() override {}
  void OnWake() override {}
  BackendStats Stats() const override { return BackendStats{}; }
  int ReceiveBufferSize() const override { return 0; }
  void SetRef(bool) override {}
  // Sends nothing: every row fails with EBADF (no socket), none waits.
  uint32_t Send(const SendBatch& batch) override {
    for (uint32_t i = batch.start; i < batch.start + batch.count; i++)
      batch.table[static_cast<size_t>(i) * kSendStride + kSendResult] = static_cast<uint32_t>(-EBADF);
    return batch.count;
  }
  int WaitWritable(std::function<void()>) override { return -ENOTSUP; }
  // Loop thread.
  void Close(CloseMode, std::function<void()> done) override {
    if (closed_) return;
    closed_ = true;
    sink_->Wake();
    done();
  }

 private:
  Sink* const sink_;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<Backend> NewSyncCloseBackend(Sink* sink) { return std::make_unique<SyncCloseBackend>(sink); }

}  // namespace dgram_ring
