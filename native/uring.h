// io_uring by raw system calls against <linux/io_uring.h> (no liburing): the
// little backend_uring.cc needs of it. One ring (a submission and a completion
// queue, mapped from the kernel), the provided-buffer ring the kernel picks
// receive buffers from, and the once-a-process check whether io_uring can run
// here at all. Linux only; everything is used on the loop thread.
//
// Memory ordering: the kernel reads the SQ tail and the buffer ring's tail
// and writes the CQ tail; we publish our tails with release stores (entries
// written before them are visible to the kernel) and read the CQ tail with an
// acquire load (the CQE it covers is visible to us), then hand consumed CQEs
// back with a release store of the CQ head.
#ifndef DGRAM_RING_URING_H_
#define DGRAM_RING_URING_H_

#include <linux/io_uring.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "ring.h"

namespace dgram_ring {

// Why io_uring cannot run in this process (a short sentence for the error
// message), or "" if it can. Probed once, on the first call (any thread):
// DGRAM_RING_IO_URING=0, io_uring_setup failing (ENOSYS, EPERM under seccomp
// or kernel.io_uring_disabled), a kernel without multishot RECVMSG (before
// Linux 6.0) or without provided-buffer rings.
const std::string& UringUnavailable();

// One io_uring instance: setup, the mapped queues, enter and register.
class Uring {
 public:
  Uring() = default;
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;
  ~Uring() { Close(); }

  // A ring of `sq_entries` submissions and at least `cq_entries` completions.
  SysError Setup(uint32_t sq_entries, uint32_t cq_entries);
  // Unmaps the queues and closes the ring (the kernel cancels what is left).
  void Close();

  // A zeroed submission entry to fill, or nullptr if the queue is full.
  io_uring_sqe* NextSqe();
  // Hands every entry taken by NextSqe to the kernel (io_uring_enter).
  SysError Submit();

  // The oldest completion not yet consumed, or nullptr.
  const io_uring_cqe* PeekCqe() const;
  // Consumes the completion PeekCqe returned.
  void ConsumeCqe();

  // io_uring_register(2). Returns 0 or a negative errno.
  int Register(unsigned opcode, const void* arg, unsigned count) const;

 private:
  int fd_ = -1;
  void* map_ = nullptr;  // the SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP)
  size_t map_bytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  uint32_t* sq_head_ = nullptr;
  uint32_t* sq_tail_ = nullptr;
  uint32_t sq_mask_ = 0;
  uint32_t sq_entries_ = 0;
  uint32_t* sq_array_ = nullptr;
  uint32_t sq_local_tail_ = 0;  // entries taken by NextSqe, published by Submit
  uint32_t sq_submitted_ = 0;   // published and entered
  uint32_t* cq_head_ = nullptr;
  uint32_t* cq_tail_ = nullptr;
  uint32_t cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
};

// A provided-buffer ring (IORING_REGISTER_PBUF_RING): the buffers a receive
// with IOSQE_BUFFER_SELECT may pick from, identified by their buffer id. The
// kernel consumes from its head; we add at our tail. Never more buffers in it
// than `entries`.
class BufferRing {
 public:
  BufferRing() = default;
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  ~BufferRing();

  // The kernel's largest provided-buffer ring.
  static constexpr uint32_t kMaxEntries = 32768;

  // Maps room for `entries` (a power of two, at most kMaxEntries) and
  // registers it as buffer group `group` of `ring`, empty.
  SysError Register(const Uring& ring, uint32_t entries, uint16_t group);
  // Unregisters it (no request may be using it): every buffer in it is ours
  // again. Register may be called again afterwards.
  void Unregister(const Uring& ring);
  // Adds a buffer (visible to the kernel once published).
  void Add(void* address, uint32_t length, uint16_t id);
  // Publishes what Add added.
  void Publish();

 private:
  uint16_t* Tail() const;

  io_uring_buf* ring_ = nullptr;  // entries_ of them, mapped
  size_t bytes_ = 0;
  uint32_t entries_ = 0;
  uint16_t group_ = 0;
  uint16_t tail_ = 0;
  bool registered_ = false;
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_URING_H_
