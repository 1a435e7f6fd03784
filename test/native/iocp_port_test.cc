// Unit test of the process's completion port (native/iocp_port.h), built
// with mingw-w64 and run under wine (or on Windows) by test/iocp-port.test.mjs:
// one completion thread for any number of sockets, completions routed to
// their socket's registration and wake function, closing (with receives
// cancelled, with none posted, abandoned after kCloseWaitMs with a late
// packet ignored), the port shut down with the last socket and started again,
// and sockets registered from several threads at once. Prints
// "N passed, N failed".
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <tlhelp32.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <vector>

#include "check.h"
#include "../../native/iocp_port.h"

using namespace dgram_ring;

namespace {

// Threads of this process, as Windows lists them.
int Threads() {
  HANDLE snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snapshot == INVALID_HANDLE_VALUE) return -1;
  THREADENTRY32 entry;
  entry.dwSize = sizeof entry;
  int count = 0;
  for (BOOL more = Thread32First(snapshot, &entry); more; more = Thread32Next(snapshot, &entry))
    if (entry.th32OwnerProcessID == GetCurrentProcessId()) count++;
  CloseHandle(snapshot);
  return count;
}

// One registered socket with one receive operation.
struct Socket {
  SOCKET socket = INVALID_SOCKET;
  uint16_t port = 0;
  PortRegistration* registration = nullptr;
  PortOperation operation;
  WSABUF buffer;
  char data[64];
  DWORD flags = 0;
  std::atomic<int> wakes{0};
  HANDLE woken = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ~Socket() { CloseHandle(woken); }
};

void Wake(void* context) {
  auto* socket = static_cast<Socket*>(context);
  socket->wakes.fetch_add(1);
  SetEvent(socket->woken);
}

bool Open(Socket* s) {
  s->socket = WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, nullptr, 0, WSA_FLAG_OVERLAPPED);
  if (s->socket == INVALID_SOCKET) return false;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s->socket, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return false;
  int length = sizeof address;
  getsockname(s->socket, reinterpret_cast<sockaddr*>(&address), &length);
  s->port = ntohs(address.sin_port);
  if (IocpPort::Register(Wake, s, &s->registration)) return false;
  return !IocpPort::Associate(s->registration, s->socket);
}

// Posts the socket's one receive, counted in flight as the backend does.
bool Post(Socket* s) {
  memset(&s->operation.overlapped, 0, sizeof s->operation.overlapped);
  s->operation.completed.store(false);
  s->buffer.buf = s->data;
  s->buffer.len = sizeof s->data;
  s->flags = 0;
  s->registration->in_flight.fetch_add(1);
  if (WSARecv(s->socket, &s->buffer, 1, nullptr, &s->flags, &s->operation.overlapped, nullptr) == 0 ||
      WSAGetLastError() == WSA_IO_PENDING)
    return true;
  s->registration->in_flight.fetch_sub(1);
  return false;
}

void Send(SOCKET from, uint16_t port) {
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  sendto(from, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
}

// Waits (at most `ms`) until the port is done with the socket.
bool WaitStopped(Socket* s, DWORD ms, bool* abandoned) {
  ULONGLONG deadline = GetTickCount64() + ms;
  DWORD error = 0;
  while (!IocpPort::Stopped(s->registration, abandoned, &error)) {
    if (GetTickCount64() >= deadline) return false;
    WaitForSingleObject(s->woken, 100);
  }
  return true;
}

// Closes as the backend does: cancel, BeginClose, wait, unregister.
bool Close(Socket* s) {
  CancelIoEx(reinterpret_cast<HANDLE>(s->socket), nullptr);
  IocpPort::BeginClose(s->registration);
  bool abandoned = true;
  bool stopped = WaitStopped(s, 5000, &abandoned);
  if (stopped) IocpPort::Unregister(s->registration);
  closesocket(s->socket);
  return stopped && !abandoned;
}

// A thread's share of the concurrent part: sockets opened, a datagram each
// received, closed, a few rounds.
std::atomic<int> g_worker_failures{0};
DWORD WINAPI Worker(void*) {
  SOCKET sender = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  for (int round = 0; round < 5; round++) {
    std::vector<Socket> sockets(8);
    for (Socket& s : sockets)
      if (!Open(&s) || !Post(&s)) g_worker_failures++;
    for (Socket& s : sockets) Send(sender, s.port);
    for (Socket& s : sockets) {
      ULONGLONG deadline = GetTickCount64() + 10000;
      while (!s.operation.completed.load() && GetTickCount64() < deadline) WaitForSingleObject(s.woken, 100);
      if (!s.operation.completed.load()) g_worker_failures++;
    }
    for (Socket& s : sockets)
      if (!Close(&s)) g_worker_failures++;
  }
  closesocket(sender);
  return 0;
}

}  // namespace

int main() {
  WSADATA wsa;
  WSAStartup(MAKEWORD(2, 2), &wsa);
  SOCKET sender = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
  Check(IocpPort::ThreadId() == 0, "no port before the first socket");

  std::vector<Socket> sockets(64);
  Check(Open(&sockets[0]), "the first socket registers");
  Check(IocpPort::ThreadId() != 0, "the first socket starts the port's thread");
  const int with_one = Threads();
  bool opened = true;
  for (size_t i = 1; i < sockets.size(); i++) opened = Open(&sockets[i]) && opened;
  Check(opened, "64 sockets register");
  Check(Threads() == with_one, "64 sockets: still one completion thread (the thread count stays flat)");
  std::printf("# threads with 1 socket: %d, with 64: %d\n", with_one, Threads());

  bool posted = true;
  for (Socket& s : sockets) posted = Post(&s) && posted;
  Check(posted, "a receive posted on each");
  for (size_t i = 0; i < sockets.size(); i += 2) Send(sender, sockets[i].port);  // every other one
  bool arrived = true;
  for (size_t i = 0; i < sockets.size(); i += 2) {
    Socket& s = sockets[i];
    ULONGLONG deadline = GetTickCount64() + 10000;
    // The thread marks the operation completed, then counts it, then wakes: wait for the wake.
    while (s.wakes.load() == 0 && GetTickCount64() < deadline) WaitForSingleObject(s.woken, 100);
    arrived = arrived && s.wakes.load() > 0 && s.operation.completed.load() && s.registration->in_flight.load() == 0;
  }
  Check(arrived, "each datagram completes its own socket's operation and wakes its registration");
  bool untouched = true;
  for (size_t i = 1; i < sockets.size(); i += 2)
    untouched = untouched && !sockets[i].operation.completed.load() && sockets[i].wakes.load() == 0;
  Check(untouched, "sockets that received nothing are neither completed nor woken");

  // Closing: those with a receive still posted get it back cancelled; those
  // without stop at once.
  bool closed = true;
  for (Socket& s : sockets) closed = Close(&s) && closed;
  Check(closed, "every socket stops after its cancelled receive came back, none abandoned");
  Check(IocpPort::ThreadId() == 0, "the last socket shuts the port down");
  // The thread frees the port and returns on its own: nothing waits for it.
  ULONGLONG gone_by = GetTickCount64() + 5000;
  while (Threads() != with_one - 1 && GetTickCount64() < gone_by) Sleep(10);
  Check(Threads() == with_one - 1, "and its thread ends");

  {
    // The port starts again; a receive that never comes back is abandoned at
    // the deadline, and its late packet is ignored.
    Socket s;
    Check(Open(&s), "a new port for a new socket");
    Check(IocpPort::ThreadId() != 0, "with its thread");
    s.registration->in_flight.fetch_add(1);  // as if a receive were out that never returns
    IocpPort::BeginClose(s.registration);
    bool abandoned = false;
    ULONGLONG started = GetTickCount64();
    Check(WaitStopped(&s, kCloseWaitMs + 5000, &abandoned) && abandoned, "a receive that never returns: abandoned");
    Check(GetTickCount64() - started >= kCloseWaitMs - 100, "after kCloseWaitMs");
    PortRegistration* kept = s.registration;
    PortOperation late;
    memset(&late.overlapped, 0, sizeof late.overlapped);
    PostQueuedCompletionStatus(IocpPort::Handle(), 0, reinterpret_cast<ULONG_PTR>(kept), &late.overlapped);
    Sleep(200);
    Check(!late.completed.load() && kept->in_flight.load() == 1, "its late packet is ignored");
    IocpPort::Unregister(kept);  // kept allocated: it is abandoned
    closesocket(s.socket);
    Check(IocpPort::ThreadId() == 0, "and the port shuts down");
  }

  {
    // Several threads (as worker environments would) open, receive and
    // close sockets at once, starting and stopping the shared port.
    HANDLE threads[4];
    for (HANDLE& thread : threads) thread = CreateThread(nullptr, 0, Worker, nullptr, 0, nullptr);
    WaitForMultipleObjects(4, threads, TRUE, 120000);
    for (HANDLE thread : threads) CloseHandle(thread);
    Check(g_worker_failures.load() == 0, "4 threads x 5 rounds x 8 sockets: every receive routed, every close clean");
    Check(IocpPort::ThreadId() == 0, "no port once all have closed");
  }
  closesocket(sender);
  return Report();
}
