#include "uring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dgram_ring {

namespace {

int SetupCall(uint32_t entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int EnterCall(int fd, uint32_t to_submit) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, to_submit, 0, 0, nullptr, 0));
}

int RegisterCall(int fd, unsigned opcode, const void* arg, unsigned count) {
  return static_cast<int>(syscall(__NR_io_uring_register, fd, opcode, arg, count));
}

template <typename T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + offset);
}

// The name of the errnos io_uring_setup and register fail with, for a reason
// a user reads; the number for anything else.
std::string ErrnoName(int err) {
  switch (err) {
    case ENOSYS: return "ENOSYS";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EFAULT: return "EFAULT";
    default: return "errno " + std::to_string(err);
  }
}

// kernel.io_uring_disabled (Linux 6.6+): 0 everyone, 1 only CAP_SYS_ADMIN or
// the kernel.io_uring_group, 2 nobody; -1 where the sysctl does not exist.
int DisabledSysctl() {
  FILE* file = fopen("/proc/sys/kernel/io_uring_disabled", "re");
  if (file == nullptr) return -1;
  int value = -1;
  if (fscanf(file, "%d", &value) != 1) value = -1;
  fclose(file);
  return value;
}

std::string Probe() {
  const char* forced = getenv("DGRAM_RING_IO_URING");
  if (forced != nullptr && strcmp(forced, "0") == 0) return "disabled by DGRAM_RING_IO_URING=0";
  Uring ring;
  if (SysError err = ring.Setup(2, 4)) {
    if (strcmp(err.syscall, "io_uring_setup") != 0) return std::string(err.syscall) + " failed with " + ErrnoName(-err.code);
    switch (-err.code) {
      case ENOSYS: return "the kernel has no io_uring (io_uring_setup failed with ENOSYS)";
      case EPERM: {
        int disabled = DisabledSysctl();
        if (disabled == 2) return "io_uring is disabled on this machine (sysctl kernel.io_uring_disabled=2)";
        if (disabled == 1) return "io_uring is restricted to a group this process is not in (sysctl kernel.io_uring_disabled=1)";
        return "io_uring_setup failed with EPERM (blocked by seccomp?)";
      }
      default: return "io_uring_setup failed with " + ErrnoName(-err.code);
    }
  }
  // Multishot RECVMSG came with Linux 6.0, which has no flag of its own to
  // show it: IORING_OP_SEND_ZC, of the same release, stands for it.
  constexpr unsigned kOps = 256;
  size_t probe_bytes = sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op);
  auto* probe = static_cast<io_uring_probe*>(calloc(1, probe_bytes));
  if (probe == nullptr) return "out of memory while probing io_uring";
  int rc = ring.Register(IORING_REGISTER_PROBE, probe, kOps);
  bool multishot = rc == 0 && probe->ops_len > IORING_OP_SEND_ZC &&
                   (probe->ops[IORING_OP_RECVMSG].flags & IO_URING_OP_SUPPORTED) &&
                   (probe->ops[IORING_OP_SEND_ZC].flags & IO_URING_OP_SUPPORTED);
  free(probe);
  if (!multishot) return "the kernel's io_uring has no multishot RECVMSG (it needs Linux 6.0)";
  BufferRing buffers;
  if (SysError err = buffers.Register(ring, 1, 0)) {
    return "the kernel's io_uring has no provided-buffer rings (IORING_REGISTER_PBUF_RING failed with " +
           ErrnoName(-err.code) + ")";
  }
  buffers.Unregister(ring);
  return "";
}

}  // namespace

const std::string& UringUnavailable() {
  static const std::string reason = Probe();  // thread-safe, once (C++11 statics)
  return reason;
}

SysError Uring::Setup(uint32_t sq_entries, uint32_t cq_entries) {
  io_uring_params params;
  memset(&params, 0, sizeof params);
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = cq_entries;
  fd_ = SetupCall(sq_entries, &params);  // close-on-exec by default
  if (fd_ < 0) {
    fd_ = -1;
    return SysError{-errno, "io_uring_setup"};
  }
  // Every kernel with multishot RECVMSG maps both rings at once.
  if (!(params.features & IORING_FEAT_SINGLE_MMAP)) return SysError{-EINVAL, "io_uring_setup"};
  map_bytes_ = std::max<size_t>(params.sq_off.array + params.sq_entries * sizeof(uint32_t),
                                params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe));
  void* map = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQ_RING);
  if (map == MAP_FAILED) return SysError{-errno, "mmap"};
  map_ = map;
  sqes_bytes_ = params.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return SysError{-errno, "mmap"};
  sqes_ = static_cast<io_uring_sqe*>(sqes);
  sq_head_ = At<uint32_t>(map_, params.sq_off.head);
  sq_tail_ = At<uint32_t>(map_, params.sq_off.tail);
  sq_mask_ = *At<uint32_t>(map_, params.sq_off.ring_mask);
  sq_entries_ = params.sq_entries;
  sq_array_ = At<uint32_t>(map_, params.sq_off.array);
  sq_local_tail_ = sq_submitted_ = *sq_tail_;
  cq_head_ = At<uint32_t>(map_, params.cq_off.head);
  cq_tail_ = At<uint32_t>(map_, params.cq_off.tail);
  cq_mask_ = *At<uint32_t>(map_, params.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(map_, params.cq_off.cqes);
  return SysError{};
}

void Uring::Close() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_bytes_);
  if (map_ != nullptr) munmap(map_, map_bytes_);
  if (fd_ >= 0) ::close(fd_);
  sqes_ = nullptr;
  map_ = nullptr;
  fd_ = -1;
}

io_uring_sqe* Uring::NextSqe() {
  uint32_t head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  if (sq_local_tail_ - head >= sq_entries_) return nullptr;
  uint32_t index = sq_local_tail_ & sq_mask_;
  sq_array_[index] = index;
  sq_local_tail_++;
  io_uring_sqe* sqe = &sqes_[index];
  memset(sqe, 0, sizeof *sqe);
  return sqe;
}

SysError Uring::Submit() {
  __atomic_store_n(sq_tail_, sq_local_tail_, __ATOMIC_RELEASE);
  while (sq_submitted_ != sq_local_tail_) {
    int rc = EnterCall(fd_, sq_local_tail_ - sq_submitted_);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return SysError{-errno, "io_uring_enter"};
    if (rc == 0) return SysError{-EBUSY, "io_uring_enter"};
    sq_submitted_ += static_cast<uint32_t>(rc);
  }
  return SysError{};
}

const io_uring_cqe* Uring::PeekCqe() const {
  uint32_t head = *cq_head_;  // only we write it
  if (head == __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE)) return nullptr;
  return &cqes_[head & cq_mask_];
}

void Uring::ConsumeCqe() { __atomic_store_n(cq_head_, *cq_head_ + 1, __ATOMIC_RELEASE); }

int Uring::Register(unsigned opcode, const void* arg, unsigned count) const {
  return RegisterCall(fd_, opcode, arg, count) < 0 ? -errno : 0;
}

// The ring is an array of io_uring_buf whose first entry's `resv` is the
// tail. (io_uring_buf_ring says so with a flexible array in a union, which a
// C++ compiler lays out differently: the array is addressed directly here.)
static_assert(sizeof(io_uring_buf) == 16 && offsetof(io_uring_buf, resv) == 14, "the kernel's buffer ring layout");

uint16_t* BufferRing::Tail() const { return &ring_[0].resv; }

BufferRing::~BufferRing() {
  if (ring_ != nullptr) munmap(ring_, bytes_);
}

SysError BufferRing::Register(const Uring& ring, uint32_t entries, uint16_t group) {
  if (ring_ == nullptr) {
    long page = sysconf(_SC_PAGESIZE);
    bytes_ = (entries * sizeof(io_uring_buf) + page - 1) / page * page;
    void* memory = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return SysError{-errno, "mmap"};
    ring_ = static_cast<io_uring_buf*>(memory);
  }
  entries_ = entries;
  group_ = group;
  tail_ = 0;
  __atomic_store_n(Tail(), tail_, __ATOMIC_RELEASE);  // a registered ring starts with head 0
  io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = reinterpret_cast<uint64_t>(ring_);
  reg.ring_entries = entries;
  reg.bgid = group;
  if (int rc = ring.Register(IORING_REGISTER_PBUF_RING, &reg, 1)) return SysError{rc, "io_uring_register"};
  registered_ = true;
  return SysError{};
}

void BufferRing::Unregister(const Uring& ring) {
  if (!registered_) return;
  io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.bgid = group_;
  ring.Register(IORING_UNREGISTER_PBUF_RING, &reg, 1);
  registered_ = false;
}

void BufferRing::Add(void* address, uint32_t length, uint16_t id) {
  io_uring_buf& buf = ring_[tail_ & (entries_ - 1)];
  buf.addr = reinterpret_cast<uint64_t>(address);
  buf.len = length;
  buf.bid = id;
  tail_++;
}

void BufferRing::Publish() { __atomic_store_n(Tail(), tail_, __ATOMIC_RELEASE); }

}  // namespace dgram_ring
