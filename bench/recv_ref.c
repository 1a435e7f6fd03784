/*
 * recv_ref: the C reference receiver of bench/run.mjs (rows `c` and `c-gro`).
 * It receives as dgram-ring's recvmmsg backend does, without Node: poll for
 * readable, then non-blocking recvmmsg into a ring of buffers until the queue
 * is empty, asking for the control messages dgram-ring asks for (IP_PKTINFO:
 * native/cmsg.cc EnableControlMessages) and decoding them and the source
 * address for every datagram. Its CPU a datagram is what the library's is
 * compared with.
 *
 *   recv_ref WARMUP_MS WINDOW_MS HARD_MS RCVBUF RING BUFFER GRO
 *
 * RCVBUF    SO_RCVBUFFORCE (else SO_RCVBUF), as dgram-ring sets it
 * RING      buffers, and so datagrams a recvmmsg call at most (1..1024)
 * BUFFER    bytes a buffer (1..65535)
 * GRO       1: UDP_GRO, 64 KiB buffers; each buffer is split by the UDP_GRO
 *           control message's segment size and every segment counts (the
 *           limit a coalescing receiver can reach); 0: plain datagrams
 *
 * Binds 127.0.0.1:0 and talks to bench/run.mjs one line at a time:
 *   stdout  {"type":"ready","port":P,"recvBufferSize":B}   bound, nothing received yet
 *   stdin   go               the sender starts now: the window opens WARMUP_MS later
 *   stdin   finish SENT      the sender has exited (SENT datagrams)
 *   stdout  {"type":"result",...}   after draining: the fields bench/receiver.mjs reports
 * Bounded by itself: SIGALRM ends it HARD_MS after start; it also exits when
 * stdin closes before `finish` (nobody wants the result).
 */
#include "common.h"
#include <netinet/udp.h>
#include <poll.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif
#ifndef SK_MEMINFO_VARS
#define SK_MEMINFO_RMEM_ALLOC 0
#define SK_MEMINFO_DROPS 8
#define SK_MEMINFO_VARS 9
#endif

#define QUIET_MS 300 /* the socket counts as drained after this long without a datagram */
#define DRAIN_CAP_MS 10000
#define GRO_BUFFER 65535

/* What one snapshot of the window holds (as receiver.mjs's snapshot()). */
struct snapshot {
  unsigned long long count;
  uint64_t ns;
  double usr, sys;
  double run_delay_ns;
};

static unsigned long long count;   /* datagrams (GRO: segments) received */
static unsigned long long bytes;   /* their payload bytes, read per datagram */
static unsigned long long calls;   /* recvmmsg calls that returned datagrams */
static unsigned long long buffers; /* buffers those calls filled (GRO: coalesced packets) */
static unsigned long long touched; /* the decoded metadata, summed so it is not optimized away */

static double run_delay_ns(void) {
  FILE *f = fopen("/proc/self/schedstat", "r");
  unsigned long long run = 0, wait = 0;
  int ok = f && fscanf(f, "%llu %llu", &run, &wait) == 2;
  if (f) fclose(f);
  return ok ? (double)wait : -1;
}

static void take(struct snapshot *s) {
  s->count = count;
  s->ns = now_ns();
  cpu_now(&s->usr, &s->sys);
  s->run_delay_ns = run_delay_ns();
}

static int meminfo(int fd, uint32_t *drops, uint32_t *queued) {
  uint32_t info[SK_MEMINFO_VARS] = {0};
  socklen_t len = sizeof info;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &len) < 0 || len <= SK_MEMINFO_DROPS * sizeof(uint32_t)) return 0;
  *drops = info[SK_MEMINFO_DROPS];
  *queued = info[SK_MEMINFO_RMEM_ALLOC];
  return 1;
}

/* One datagram as dgram-ring's Complete() + DecodeControl() see it: source
 * address and port, the IP_PKTINFO destination and interface, and (GRO) the
 * segment size; then its payload length is read, a segment at a time. */
static void consume(struct msghdr *h, unsigned len, const struct sockaddr_in *from) {
  touched += from->sin_addr.s_addr + ntohs(from->sin_port);
  int segment = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      touched += (unsigned)info.ipi_ifindex + (info.ipi_spec_dst.s_addr != info.ipi_addr.s_addr);
    } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      memcpy(&segment, CMSG_DATA(c), sizeof segment);
    }
  }
  if (segment <= 0 || (unsigned)segment >= len) {
    count++;
    bytes += len;
    return;
  }
  for (unsigned offset = 0; offset < len; offset += (unsigned)segment) {
    count++;
    bytes += len - offset < (unsigned)segment ? len - offset : (unsigned)segment;
  }
}

/* Reads until the queue is empty; returns the datagrams read. */
static unsigned long long receive(int fd, struct mmsghdr *msgs, int ring, size_t control) {
  unsigned long long before = count;
  for (;;) {
    for (int i = 0; i < ring; i++) {
      msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
      msgs[i].msg_hdr.msg_controllen = control;
      msgs[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(fd, msgs, ring, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      die("recvmmsg");
    }
    calls++;
    buffers += (unsigned long long)n;
    for (int i = 0; i < n; i++)
      consume(&msgs[i].msg_hdr, msgs[i].msg_len, (const struct sockaddr_in *)msgs[i].msg_hdr.msg_name);
    if (n < ring) break; /* the queue was empty: back to poll, as the library does */
  }
  return count - before;
}

/* Reads what stdin holds and acts on every whole line: `go` sets *go,
 * `finish SENT` sets *finish and *sent (times in ns). */
static void commands(char *line, size_t *used, uint64_t *go, uint64_t *finish, unsigned long long *sent) {
  ssize_t n = read(0, line + *used, 255 - *used);
  if (n == 0) exit(4); /* the parent went away */
  if (n < 0) {
    if (errno != EINTR) die("read stdin");
    return;
  }
  *used += (size_t)n;
  line[*used] = 0;
  char *start = line, *end;
  while ((end = strchr(start, '\n'))) {
    *end = 0;
    if (strcmp(start, "go") == 0) *go = now_ns();
    else if (sscanf(start, "finish %llu", sent) == 1) *finish = now_ns();
    start = end + 1;
  }
  *used = strlen(start);
  if (*used == 255) *used = 0; /* no line in 255 bytes: not ours, drop it */
  memmove(line, start, *used);
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s WARMUP_MS WINDOW_MS HARD_MS RCVBUF RING BUFFER GRO (run by bench/run.mjs)\n", argv[0]);
    return 2;
  }
  uint64_t warmup = (uint64_t)atoll(argv[1]) * 1000000ull, window = (uint64_t)atoll(argv[2]) * 1000000ull;
  unsigned hard_s = (unsigned)((atoll(argv[3]) + 999) / 1000);
  int rcvbuf = atoi(argv[4]), ring = atoi(argv[5]), buffer = atoi(argv[6]), gro = atoi(argv[7]);
  if (ring < 1 || ring > 1024 || buffer < 1 || buffer > 65535 || rcvbuf < 0) die("arguments");
  if (gro) buffer = GRO_BUFFER;
  alarm(hard_s); /* SIGALRM's default action ends the process */

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int on = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0) die("IP_PKTINFO");
  if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) < 0) die("UDP_GRO");
  struct sockaddr_in addr = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  socklen_t addrlen = sizeof addr;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (getsockname(fd, (struct sockaddr *)&addr, &addrlen) < 0) die("getsockname");

  size_t control = CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int));
  struct mmsghdr *msgs = calloc((size_t)ring, sizeof *msgs);
  struct iovec *iovs = calloc((size_t)ring, sizeof *iovs);
  struct sockaddr_in *names = calloc((size_t)ring, sizeof *names);
  char *controls = calloc((size_t)ring, control);
  char *slab = malloc((size_t)ring * (size_t)buffer);
  if (!msgs || !iovs || !names || !controls || !slab) die("malloc");
  for (int i = 0; i < ring; i++) {
    iovs[i] = (struct iovec){.iov_base = slab + (size_t)i * buffer, .iov_len = (size_t)buffer};
    msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_iov = &iovs[i], .msg_iovlen = 1,
                                      .msg_control = controls + (size_t)i * control};
  }

  int got = 0;
  socklen_t optlen = sizeof got;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &optlen);
  printf("{\"type\":\"ready\",\"port\":%d,\"recvBufferSize\":%d}\n", ntohs(addr.sin_port), got);
  fflush(stdout);

  char line[256];
  size_t used = 0;
  unsigned long long sent = 0;
  uint64_t go = 0, finish = 0, last_arrival = 0;
  struct snapshot start = {0}, end = {0};
  int started = 0, ended = 0;
  struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    uint64_t t = now_ns();
    if (go && !started && t >= go + warmup) take(&start), started = 1;
    if (started && !ended && t >= go + warmup + window) take(&end), ended = 1;
    if (finish && (t - last_arrival >= QUIET_MS * 1000000ull || t - finish >= DRAIN_CAP_MS * 1000000ull)) break;
    /* Wake for the next window edge, or to see whether the drain is done. */
    uint64_t due = !go ? 0 : !started ? go + warmup : !ended ? go + warmup + window : t + 50000000ull;
    int timeout = due ? (int)((due - t + 999999) / 1000000) : -1;
    if (poll(fds, finish ? 1 : 2, timeout) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents & POLLIN && receive(fd, msgs, ring, control)) last_arrival = now_ns();
    if (!finish && fds[1].revents & (POLLIN | POLLHUP)) {
      commands(line, &used, &go, &finish, &sent);
      if (finish) last_arrival = finish;
    }
  }
  uint64_t t = now_ns();
  int drained = t - last_arrival >= QUIET_MS * 1000000ull;
  uint32_t drops = 0, queued = 0;
  int have_meminfo = meminfo(fd, &drops, &queued);
  close(fd);
  if (!ended) {
    fprintf(stderr, "recv_ref: the measurement window did not complete (is --seconds shorter than the sender ran?)\n");
    return 1;
  }

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double secs = (double)(end.ns - start.ns) / 1e9;
  unsigned long long datagrams = end.count - start.count;
  double cpu_us = (end.usr - start.usr + end.sys - start.sys) * 1e6;
  printf("{\"type\":\"result\",\"sent\":%llu,\"received\":%llu,\"bytes\":%llu,\"drained\":%s,", sent, count, bytes,
         drained ? "true" : "false");
  printf("\"window\":{\"seconds\":%.6f,\"datagrams\":%llu,\"pps\":%.1f,\"cpuUserUs\":%.0f,\"cpuSystemUs\":%.0f,", secs,
         datagrams, datagrams / secs, (end.usr - start.usr) * 1e6, (end.sys - start.sys) * 1e6);
  if (datagrams)
    printf("\"cpuNsPerDatagram\":%.1f,", cpu_us * 1000 / datagrams);
  else
    printf("\"cpuNsPerDatagram\":null,");
  printf("\"cpuUtilization\":%.4f,", cpu_us / 1e6 / secs);
  if (start.run_delay_ns >= 0 && end.run_delay_ns >= 0)
    printf("\"runQueueWait\":%.4f},", (end.run_delay_ns - start.run_delay_ns) / (double)(end.ns - start.ns));
  else
    printf("\"runQueueWait\":null},");
  if (have_meminfo)
    printf("\"kernelDrops\":%u,\"queuedBytes\":%u,", drops, queued);
  printf("\"calls\":%llu,\"buffers\":%llu,\"maxRSS\":%ld,\"recvBufferSize\":%d,\"touched\":%llu}\n", calls, buffers,
         ru.ru_maxrss * 1024L, got, touched);
  fflush(stdout);
  return 0;
}
