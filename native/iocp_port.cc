// The process's completion port and its thread (iocp_port.h).
#include "iocp_port.h"

#include <algorithm>
#include <new>

#include "win_errors.h"

namespace dgram_ring {

namespace {

// The packet Unregister posts when the last reference goes: the thread frees
// the port and returns.
// Registrations are never at address 0.
constexpr ULONG_PTR kQuitKey = 0;

// Completions taken from the port per call.
constexpr ULONG kEntriesPerWait = 64;

struct Port {
  HANDLE handle = nullptr;
  HANDLE thread = nullptr;
  DWORD thread_id = 0;
  // Below: under g_lock.
  uint32_t references = 0;
  bool failed = false;    // the thread returned on `error`; nothing completes any more
  bool quitting = false;  // the last reference went: the thread frees the port and returns
  bool handle_closed = false;  // Unregister closed the handle (it could not post the quit packet)
  DWORD error = 0;
  PortRegistration* live = nullptr;     // registrations not stopped
  PortRegistration* closing = nullptr;  // those of them closing
  // How many are closing: written under g_lock, read without it by the
  // completion thread, which skips the deadlines (and the lock) while none is.
  std::atomic<uint32_t> closing_count{0};
};

// Guards g_port, the Port's fields marked so and the registrations' fields
// marked so. An SRW lock: statically initialized, nothing to destroy at exit.
SRWLOCK g_lock = SRWLOCK_INIT;
Port* g_port = nullptr;

// Under g_lock.
void Link(Port* port, PortRegistration* registration) {
  registration->live_prev = nullptr;
  registration->live_next = port->live;
  if (port->live != nullptr) port->live->live_prev = registration;
  port->live = registration;
}

// Under g_lock: takes `registration` off the live list and, if there, the closing list.
void Unlink(Port* port, PortRegistration* registration) {
  if (registration->live_prev != nullptr)
    registration->live_prev->live_next = registration->live_next;
  else if (port->live == registration)
    port->live = registration->live_next;
  if (registration->live_next != nullptr) registration->live_next->live_prev = registration->live_prev;
  registration->live_prev = registration->live_next = nullptr;
  if (!registration->closing) return;
  for (PortRegistration** at = &port->closing; *at != nullptr; at = &(*at)->closing_next) {
    if (*at == registration) {
      *at = registration->closing_next;
      break;
    }
  }
  registration->closing = false;
  registration->closing_next = nullptr;
  port->closing_count.fetch_sub(1, std::memory_order_release);
}

// Under g_lock: the completion thread is done with `registration` (or gives
// up on it: `abandoned`). Its last wake is made under the lock, so once
// Stopped() has seen `stopped` the call has returned.
void StopLocked(Port* port, PortRegistration* registration, bool abandoned, DWORD error) {
  Unlink(port, registration);
  registration->stopped = true;
  registration->abandoned.store(abandoned, std::memory_order_release);
  registration->error = error;
  registration->wake(registration->context);
}

// Completion thread: how long to wait for the next packet (the nearest
// closing deadline).
DWORD NextTimeout(Port* port) {
  if (port->closing_count.load(std::memory_order_acquire) == 0) return INFINITE;
  AcquireSRWLockShared(&g_lock);
  ULONGLONG nearest = 0;
  for (PortRegistration* r = port->closing; r != nullptr; r = r->closing_next)
    if (nearest == 0 || r->deadline < nearest) nearest = r->deadline;
  ReleaseSRWLockShared(&g_lock);
  if (nearest == 0) return INFINITE;
  ULONGLONG now = GetTickCount64();
  return nearest <= now ? 0 : static_cast<DWORD>(std::min<ULONGLONG>(nearest - now, kCloseWaitMs));
}

// Completion thread: abandons the closing registrations past their deadline.
// Their operations and themselves stay allocated for ever (the kernel may
// still write the buffers); their late packets are ignored.
void ExpireDeadlines(Port* port) {
  if (port->closing_count.load(std::memory_order_acquire) == 0) return;
  AcquireSRWLockExclusive(&g_lock);
  ULONGLONG now = GetTickCount64();
  for (PortRegistration* r = port->closing; r != nullptr;) {
    PortRegistration* next = r->closing_next;
    if (r->deadline <= now) StopLocked(port, r, true, 0);
    r = next;
  }
  ReleaseSRWLockExclusive(&g_lock);
}

// Completion thread: GetQueuedCompletionStatusEx failed (the port is gone:
// it never should). Every registration is woken with the error and treated
// as abandoned (what was posted may still be out); the thread returns.
void FailAll(Port* port, DWORD error) {
  AcquireSRWLockExclusive(&g_lock);
  port->failed = true;
  port->error = error;
  while (port->live != nullptr) StopLocked(port, port->live, true, error);
  ReleaseSRWLockExclusive(&g_lock);
}

// Completion thread, told to quit (nothing is registered: Unregister has
// taken the port out of g_port): frees the port. Nothing waits for this.
DWORD Quit(Port* port) {
  AcquireSRWLockShared(&g_lock);
  bool handle_closed = port->handle_closed;
  ReleaseSRWLockShared(&g_lock);
  if (!handle_closed) CloseHandle(port->handle);
  delete port;
  return 0;
}

// Completion thread: its entry point. Marks operations completed and wakes
// their registrations, stops closing registrations once all came back, until
// Unregister's quit packet.
DWORD WINAPI CompletionThread(void* argument) {
  Port* port = static_cast<Port*>(argument);
  OVERLAPPED_ENTRY entries[kEntriesPerWait];
  PortRegistration* touched[kEntriesPerWait];
  for (;;) {
    ULONG count = 0;
    if (!GetQueuedCompletionStatusEx(port->handle, entries, kEntriesPerWait, &count, NextTimeout(port), FALSE)) {
      DWORD error = GetLastError();
      if (error != WAIT_TIMEOUT) {
        AcquireSRWLockShared(&g_lock);
        bool quitting = port->quitting;
        ReleaseSRWLockShared(&g_lock);
        if (quitting) return Quit(port);  // Unregister closed the handle
        FailAll(port, error);
        return 0;
      }
      count = 0;
    }
    bool quit = false;
    size_t touched_count = 0;
    for (ULONG i = 0; i < count; i++) {
      if (entries[i].lpCompletionKey == kQuitKey) {
        quit = true;
        continue;
      }
      auto* registration = reinterpret_cast<PortRegistration*>(entries[i].lpCompletionKey);
      if (registration->abandoned.load(std::memory_order_acquire)) continue;  // a late packet: nothing of it may be touched but the flag
      if (entries[i].lpOverlapped != nullptr) {
        CONTAINING_RECORD(entries[i].lpOverlapped, PortOperation, overlapped)->completed.store(true, std::memory_order_release);
        registration->in_flight.fetch_sub(1, std::memory_order_acq_rel);
      } else {
        registration->checked = true;  // BeginClose's packet
      }
      if (std::find(touched, touched + touched_count, registration) == touched + touched_count)
        touched[touched_count++] = registration;
    }
    for (size_t i = 0; i < touched_count; i++) {
      PortRegistration* registration = touched[i];
      if (registration->checked && registration->in_flight.load(std::memory_order_acquire) <= 0) {
        // Closing and all came back: no packet for it can follow.
        AcquireSRWLockExclusive(&g_lock);
        StopLocked(port, registration, false, 0);
        ReleaseSRWLockExclusive(&g_lock);
      } else {
        // Under the lock, as BeginClose may have given up on it meanwhile:
        // once `stopped` is set (exclusive), no wake follows.
        AcquireSRWLockShared(&g_lock);
        if (!registration->stopped) registration->wake(registration->context);
        ReleaseSRWLockShared(&g_lock);
      }
    }
    ExpireDeadlines(port);
    if (quit) return Quit(port);
  }
}

}  // namespace

SysError IocpPort::Register(void (*wake)(void*), void* context, PortRegistration** out) {
  *out = nullptr;
  auto* registration = new (std::nothrow) PortRegistration;
  if (registration == nullptr) return SysError{kUvENOMEM, "malloc"};
  registration->wake = wake;
  registration->context = context;
  AcquireSRWLockExclusive(&g_lock);
  SysError error;
  if (g_port == nullptr) {
    auto* port = new (std::nothrow) Port;
    if (port == nullptr) {
      error = SysError{kUvENOMEM, "malloc"};
    } else if ((port->handle = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1)) == nullptr) {
      error = Win32Error("CreateIoCompletionPort");
      delete port;
    } else if ((port->thread = CreateThread(nullptr, 0, CompletionThread, port, 0, &port->thread_id)) == nullptr) {
      error = Win32Error("CreateThread");
      CloseHandle(port->handle);
      delete port;
    } else {
      g_port = port;
    }
  } else if (g_port->failed) {
    // Until the last socket of the failed port has closed, none can open.
    error = SysError{TranslateError(g_port->error), "GetQueuedCompletionStatusEx"};
  }
  if (!error) {
    g_port->references++;
    Link(g_port, registration);
    *out = registration;
  }
  ReleaseSRWLockExclusive(&g_lock);
  if (error) delete registration;
  return error;
}

SysError IocpPort::Associate(PortRegistration* registration, SOCKET socket) {
  AcquireSRWLockShared(&g_lock);
  HANDLE port = g_port->handle;  // a registration holds a reference: the port exists
  ReleaseSRWLockShared(&g_lock);
  // Every completion, even of a receive that finishes inside WSARecvMsg, goes
  // through the port (no FILE_SKIP_COMPLETION_PORT_ON_SUCCESS): one path
  // marks every operation completed.
  if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(socket), port, reinterpret_cast<ULONG_PTR>(registration), 0) ==
      nullptr)
    return Win32Error("CreateIoCompletionPort");
  return SysError{};
}

void IocpPort::BeginClose(PortRegistration* registration) {
  AcquireSRWLockExclusive(&g_lock);
  Port* port = g_port;
  if (registration->stopped) {  // the port failed: nothing will come back
    ReleaseSRWLockExclusive(&g_lock);
    return;
  }
  registration->deadline = GetTickCount64() + kCloseWaitMs;
  registration->closing = true;
  registration->closing_next = port->closing;
  port->closing = registration;
  port->closing_count.fetch_add(1, std::memory_order_release);
  // The thread looks at the registration again (it may have nothing in
  // flight: then this packet stops it) and at the new deadline. Posted under
  // the lock: the port cannot fail between the check above and here.
  if (!PostQueuedCompletionStatus(port->handle, 0, reinterpret_cast<ULONG_PTR>(registration), nullptr)) {
    // The packet cannot be queued (out of memory): without it the thread
    // would stop the registration only at its deadline; give up on it now.
    StopLocked(port, registration, true, 0);
  }
  ReleaseSRWLockExclusive(&g_lock);
}

bool IocpPort::Stopped(PortRegistration* registration, bool* abandoned, DWORD* error) {
  AcquireSRWLockShared(&g_lock);
  bool stopped = registration->stopped;
  *abandoned = registration->abandoned.load(std::memory_order_relaxed);
  *error = registration->error;
  ReleaseSRWLockShared(&g_lock);
  return stopped;
}

void IocpPort::Unregister(PortRegistration* registration) {
  AcquireSRWLockExclusive(&g_lock);
  Port* port = g_port;
  if (!registration->stopped) Unlink(port, registration);  // a failed open: it never posted
  if (!registration->abandoned.load(std::memory_order_relaxed)) delete registration;
  Port* last = --port->references == 0 ? port : nullptr;
  bool failed = false;
  HANDLE thread = nullptr;
  if (last != nullptr) {
    g_port = nullptr;  // the next Register starts a new port
    failed = last->failed;
    thread = last->thread;
    last->quitting = true;
    // Nothing is live. The thread takes the quit packet, frees the port and
    // returns; the loop thread does not wait for that (a thread switch on a
    // busy machine). If the packet cannot be queued, closing the handle ends
    // the thread's wait with an error instead, which it reads as the same.
    // Posted under the lock, so that handle_closed is set before the thread
    // can look at it.
    if (!failed && !PostQueuedCompletionStatus(last->handle, 0, kQuitKey, nullptr)) {
      last->handle_closed = true;
      CloseHandle(last->handle);
    }
  }
  ReleaseSRWLockExclusive(&g_lock);
  if (last == nullptr) return;
  if (failed) {
    // The thread returned after FailAll (it did not free the port): the
    // wait is for a thread that is done.
    WaitForSingleObject(thread, INFINITE);
    CloseHandle(last->handle);
    delete last;
  }
  CloseHandle(thread);  // the thread goes on to its end on its own
}

DWORD IocpPort::ThreadId() {
  AcquireSRWLockShared(&g_lock);
  DWORD id = g_port != nullptr ? g_port->thread_id : 0;
  ReleaseSRWLockShared(&g_lock);
  return id;
}

HANDLE IocpPort::Handle() {
  AcquireSRWLockShared(&g_lock);
  HANDLE handle = g_port != nullptr ? g_port->handle : nullptr;
  ReleaseSRWLockShared(&g_lock);
  return handle;
}

}  // namespace dgram_ring
