/*
 * sl5424: RFC 5424 syslog load generator over UDP to 127.0.0.1, using sendmmsg.
 * Vendored into the project for npm run bench -- --ingest. Modelled on
 * blast.c beside it; each datagram is one valid RFC 5424
 * message carrying its own sequence number:
 *
 *   <165>1 2026-11-27T12:00:00.000Z host app 1234 ID47 - seq=NNNNNNNN message body xxxx...
 *
 * usage: sl5424 PORT SECONDS [RATE] [BATCH] [SIZE]
 *   SECONDS  hard bound on sending time (the process exits after it)
 *   RATE     messages/s target; 0 = flat out (default 0)
 *   BATCH    messages per sendmmsg call (default 32)
 *   SIZE     payload bytes per message (default 200)
 *
 * Sequence numbers run 0..sent-1 without gaps (a partial sendmmsg resends the
 * unsent tail with the same numbers). Prints one line:
 *   sl5424 port=.. rate=.. secs=.. sent=.. pps=.. errs=.. calls=.. usr=.. sys=..
 */
#include "common.h"

static const char HEADER[] = "<165>1 2026-11-27T12:00:00.000Z host app 1234 ID47 - seq=";
#define SEQ_DIGITS 8

static void put_seq(char *p, unsigned long long seq) {
  for (int i = SEQ_DIGITS - 1; i >= 0; i--) {
    p[i] = (char)('0' + seq % 10);
    seq /= 10;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PORT SECONDS [RATE] [BATCH] [SIZE]\n", argv[0]);
    return 1;
  }
  int port = atoi(argv[1]);
  double secs = atof(argv[2]);
  double rate = argc > 3 ? atof(argv[3]) : 0;
  int batch = argc > 4 ? atoi(argv[4]) : 32;
  int size = argc > 5 ? atoi(argv[5]) : 200;
  if (batch < 1 || batch > 1024) batch = 32;
  if (secs <= 0 || secs > 5) {
    fprintf(stderr, "SECONDS must be in (0, 5]\n");
    return 1;
  }
  size_t hlen = sizeof HEADER - 1;
  const char body[] = " message body ";
  if ((size_t)size < hlen + SEQ_DIGITS + sizeof body) size = (int)(hlen + SEQ_DIGITS + sizeof body);

  int fd = loopback_sender(port);

  /* One payload buffer per slot of the batch; only the digits change. */
  char *bufs = calloc((size_t)batch, (size_t)size);
  struct iovec *iov = calloc((size_t)batch, sizeof *iov);
  struct mmsghdr *msgs = calloc((size_t)batch, sizeof *msgs);
  for (int i = 0; i < batch; i++) {
    char *b = bufs + (size_t)i * size;
    memcpy(b, HEADER, hlen);
    put_seq(b + hlen, 0);
    memcpy(b + hlen + SEQ_DIGITS, body, sizeof body - 1);
    for (size_t k = hlen + SEQ_DIGITS + sizeof body - 1; k < (size_t)size; k++) b[k] = (char)('a' + k % 26);
    iov[i].iov_base = b;
    iov[i].iov_len = (size_t)size;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  uint64_t t0 = now_ns(), dur = (uint64_t)(secs * 1e9), t;
  unsigned long long sent = 0, errs = 0, calls = 0;
  double u0, s0, u1, s1;
  cpu_now(&u0, &s0);
  while ((t = now_ns()) - t0 < dur) {
    int want = batch;
    if (paced_wait(rate, t0, t, sent)) continue;
    for (int i = 0; i < want; i++) put_seq(bufs + (size_t)i * size + hlen, sent + (unsigned long long)i);
    int n = sendmmsg(fd, msgs, (unsigned)want, 0);
    calls++;
    if (n > 0)
      sent += (unsigned long long)n;
    else
      errs++;
  }
  cpu_now(&u1, &s1);
  double el = (now_ns() - t0) / 1e9;
  printf("sl5424 port=%d rate=%.0f secs=%.3f sent=%llu pps=%.0f errs=%llu calls=%llu size=%d batch=%d usr=%.3f sys=%.3f\n",
         port, rate, el, sent, sent / el, errs, calls, size, batch, u1 - u0, s1 - s0);
  free(msgs);
  free(iov);
  free(bufs);
  close(fd);
  return 0;
}
