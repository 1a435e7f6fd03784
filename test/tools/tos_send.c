/*
 * tos_send: sends COUNT datagrams "tos-I" to ADDR:PORT (IPv4 or IPv6, by the
 * address) with the IP TOS byte / IPv6 traffic class TOS and the TTL / hop
 * limit TTL set on the socket, so a receiver can read both back. node:dgram
 * sets a TTL but no TOS. Bounded by COUNT. Prints "sent N".
 *
 *   tos_send ADDR PORT TOS TTL COUNT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: tos_send ADDR PORT TOS TTL COUNT\n");
    return 2;
  }
  int port = atoi(argv[2]), tos = atoi(argv[3]), ttl = atoi(argv[4]), count = atoi(argv[5]);
  struct sockaddr_storage to;
  socklen_t to_length;
  memset(&to, 0, sizeof to);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&to;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&to;
  int ipv6 = strchr(argv[1], ':') != NULL;
  if (ipv6) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) != 1) return 2;
    to_length = sizeof *v6;
  } else {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    if (inet_pton(AF_INET, argv[1], &v4->sin_addr) != 1) return 2;
    to_length = sizeof *v4;
  }
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return perror("socket"), 1;
  int ok = ipv6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos) : setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  if (ok < 0) return perror("setsockopt tos"), 1;
  ok = ipv6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) : setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
  if (ok < 0) return perror("setsockopt ttl"), 1;
  int sent = 0;
  for (int i = 0; i < count; i++) {
    char payload[32];
    int length = snprintf(payload, sizeof payload, "tos-%d", i);
    if (sendto(fd, payload, (size_t)length, 0, (struct sockaddr *)&to, to_length) == length) sent++;
  }
  close(fd);
  printf("sent %d\n", sent);
  return sent == count ? 0 : 1;
}
