// The iocp backend's completion port: one I/O completion port and one
// completion thread a process, shared by every iocp socket of every Node
// environment (the main thread's and each worker's). Created on first use,
// counted, and shut down when the last socket that used it has finished
// closing (its thread frees the port and returns; nothing waits for it); a
// later socket starts a new one.
//
// Each socket registers once (PortRegistration) and associates its handle
// with the port under that registration as completion key; each receive's
// OVERLAPPED is the first member of a PortOperation. The completion thread
// marks the operation completed, counts the socket's receives still with the
// kernel (in_flight) and calls the registration's wake function, which (in
// the backend) signals a uv_async_t on the loop of the environment that owns
// the socket. It never touches anything else of a socket.
//
// Closing a socket: the loop thread cancels its receives and calls
// BeginClose; once every receive has come back, the completion thread marks
// the registration stopped and wakes it one last time, under the port's lock;
// Stopped() (same lock) tells the loop thread that the completion thread is
// done with the registration and the operations: they may be freed. If a
// receive does not come back within kCloseWaitMs, the registration is
// abandoned: it and the operations stay allocated for ever (the kernel may
// still write them), and packets that still arrive for it are ignored.
#ifndef DGRAM_RING_IOCP_PORT_H_
#define DGRAM_RING_IOCP_PORT_H_

#include <winsock2.h>
#include <windows.h>

#include <atomic>
#include <cstdint>

#include "ring.h"

namespace dgram_ring {

// How long the completion thread waits, once a socket is closing, for its
// cancelled receives to come back. They come back at once on Windows and
// under wine; the bound only keeps a receive that never does from holding the
// close (and the process's exit) for ever.
constexpr DWORD kCloseWaitMs = 10000;

// One overlapped operation of a registered socket. Its OVERLAPPED is what the
// completion packet points at.
struct PortOperation {
  WSAOVERLAPPED overlapped;
  // Set by the completion thread once the port has returned the operation;
  // read (and reset before posting) by the loop thread.
  std::atomic<bool> completed{false};
};

// What one socket shares with the completion thread. Created by
// IocpPort::Register, freed by IocpPort::Unregister; never freed once
// abandoned.
struct PortRegistration {
  // Any thread: asks the owner's loop to look at its operations (for the
  // backend, uv_async_send on its signal handle). Called by the completion
  // thread after operations completed, once stopped, and once if the port
  // fails; always under the port's lock, and never after `stopped` was set
  // (so once Stopped() has seen it, no call is under way or will come).
  void (*wake)(void* context) = nullptr;
  void* context = nullptr;
  // Operations posted whose packet the completion thread has not taken:
  // incremented by the loop thread before it posts (decremented again if the
  // post failed at once), decremented by the completion thread.
  std::atomic<int32_t> in_flight{0};
  // Completion thread only: BeginClose's packet was taken off the port (no
  // packet for this registration can follow once in_flight is 0 too).
  bool checked = false;
  // Below: written under the port's lock (by the completion thread, or by
  // BeginClose when it cannot post its packet). The completion thread also
  // reads `abandoned` without the lock, for every packet.
  bool stopped = false;  // the completion thread is done with it
  std::atomic<bool> abandoned{false};  // it stopped with operations maybe still out (timeout, port failure)
  DWORD error = 0;         // why the port failed (GetQueuedCompletionStatusEx), if it did
  ULONGLONG deadline = 0;  // closing: when to give up waiting
  bool closing = false;    // in the port's list of closing registrations
  // The port's lists: every registration not yet stopped, and those closing.
  PortRegistration* live_prev = nullptr;
  PortRegistration* live_next = nullptr;
  PortRegistration* closing_next = nullptr;
};

// The process's port. Every function: any loop thread (of any environment).
class IocpPort {
 public:
  // Takes a reference on the port (creating it and its thread on first use)
  // and registers a socket whose completions call `wake(context)`. On
  // failure returns the error and *out is null (no reference held).
  static SysError Register(void (*wake)(void*), void* context, PortRegistration** out);
  // Associates `socket` with the port under `registration`.
  static SysError Associate(PortRegistration* registration, SOCKET socket);
  // The socket is closing: its receives have been cancelled (or none is
  // posted) and none will be posted again. Posts one packet for it; once that
  // packet is taken and in_flight is 0, the completion thread marks it
  // stopped, or abandons it after kCloseWaitMs. Once per registration.
  static void BeginClose(PortRegistration* registration);
  // Whether the completion thread is done with `registration` (stopped, and
  // its last wake call has returned). *abandoned says whether operations
  // are still out (then neither they nor the registration may be freed) and
  // *error why the port failed, if it did.
  static bool Stopped(PortRegistration* registration, bool* abandoned, DWORD* error);
  // Frees `registration` (unless abandoned: then it is kept for ever) and
  // drops the reference Register took; the last one shuts the port down: its
  // thread frees it and returns, without the caller waiting. Only after
  // Stopped() said so, or for a registration that never posted and was never
  // closed (a failed open).
  static void Unregister(PortRegistration* registration);

  // For tests (test/native/iocp_port_test.cc): the id of the completion
  // thread and the port's handle; 0 and null when there is no port.
  static DWORD ThreadId();
  static HANDLE Handle();
};

}  // namespace dgram_ring

#endif  // DGRAM_RING_IOCP_PORT_H_
