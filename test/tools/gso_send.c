/*
 * gso_send: sends COUNT sequence-numbered datagrams to ADDR:PORT with UDP GSO
 * (UDP_SEGMENT), SEGS a sendmsg, so a receiver with UDP_GRO gets them
 * coalesced. Each message is SEGS-1 datagrams of SIZE bytes and a last one of
 * LAST bytes (0: SIZE too; LAST < SIZE makes a segment size that does not
 * divide the buffer). Datagram i starts with i as 4 bytes big-endian; byte j
 * after that is (i + j) & 0xff, so a receiver can check order and integrity.
 * Paced (a pause every message) so that a receive buffer of the default size
 * is enough; bounded by COUNT. Prints "sent N".
 *
 *   gso_send PORT COUNT SIZE SEGS [LAST] [ADDR]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static void fill(uint8_t *p, uint32_t seq, int length) {
  for (int j = 0; j < length; j++) p[j] = j < 4 ? (uint8_t)(seq >> (8 * (3 - j))) : (uint8_t)(seq + j - 4);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s PORT COUNT SIZE SEGS [LAST] [ADDR]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  long count = atol(argv[2]);
  int size = atoi(argv[3]);
  int segs = atoi(argv[4]);
  int last = argc > 5 ? atoi(argv[5]) : 0;
  const char *addr = argc > 6 ? argv[6] : "127.0.0.1";
  if (last == 0) last = size;
  if (size < 4 || last < 4 || last > size || segs < 1 || segs > 64 || (long)size * segs > 65000) {
    fprintf(stderr, "gso_send: bad SIZE/SEGS/LAST\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (fd < 0 || inet_pton(AF_INET, addr, &dst.sin_addr) != 1 || connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
    perror("gso_send: socket");
    return 2;
  }
  uint8_t *buffer = malloc((size_t)size * segs);
  long sent = 0;
  struct timespec pause = {0, 300000};
  while (sent < count) {
    int n = count - sent < segs ? (int)(count - sent) : segs;
    size_t length = 0;
    for (int i = 0; i < n; i++) {
      int l = i == n - 1 ? last : size;
      fill(buffer + length, (uint32_t)(sent + i), l);
      length += l;
    }
    char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
    struct iovec iov = {buffer, length};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 1) { /* a single datagram goes without GSO */
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t segment = (uint16_t)size;
      memcpy(CMSG_DATA(c), &segment, sizeof segment);
    }
    if (sendmsg(fd, &msg, 0) < 0) {
      perror("gso_send: sendmsg");
      return 1;
    }
    sent += n;
    nanosleep(&pause, NULL);
  }
  printf("sent %ld\n", sent);
  free(buffer);
  return 0;
}
