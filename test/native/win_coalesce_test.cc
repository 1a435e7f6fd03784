// Unit test of Windows receive coalescing's decoding (native/cmsg.cc's
// UDP_COALESCED_INFO branch, WSACMSGHDR layout) and split (coalesce.h), built
// with mingw-w64 and run under wine by test/win-native.test.mjs: wine has no
// receive coalescing, so this is where a coalesced Windows buffer is tested.
// Prints "N passed, N failed".
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>

#include <cstring>
#include <vector>

#include "check.h"
#include "../../native/cmsg.h"
#include "../../native/coalesce.h"

using namespace dgram_ring;

namespace {

constexpr int kUdpCoalescedInfo = 3;  // ws2ipdef.h's UDP_COALESCED_INFO

// Appends one control message as Winsock lays it out.
void Append(std::vector<uint8_t>* buffer, int level, int type, const void* payload, size_t length) {
  size_t at = buffer->size();
  buffer->resize(at + WSA_CMSG_SPACE(length), 0);
  WSACMSGHDR header = {};
  header.cmsg_len = WSA_CMSG_LEN(length);
  header.cmsg_level = level;
  header.cmsg_type = type;
  memcpy(buffer->data() + at, &header, sizeof header);
  memcpy(buffer->data() + at + WSA_CMSG_LEN(0), payload, length);
}

Completion Decode(const std::vector<uint8_t>& bytes, size_t length) {
  std::vector<uint8_t> exact(bytes.begin(), bytes.begin() + length);
  Completion out;
  DecodeControl(exact.data(), exact.size(), false, &out);
  return out;
}

}  // namespace

int main() {
  IN_PKTINFO v4 = {};
  v4.ipi_ifindex = 3;
  v4.ipi_addr.s_addr = htonl(0x7f000001);
  DWORD segment = 1200;

  std::vector<uint8_t> both;
  Append(&both, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
  Append(&both, IPPROTO_UDP, kUdpCoalescedInfo, &segment, sizeof segment);
  Options coalescing;
  coalescing.coalesce = true;
  Check(ControlBufferSize(coalescing) >= both.size(), "a slot's control buffer has room for pktinfo and UDP_COALESCED_INFO");
  Completion a = Decode(both, both.size());
  Check(a.segment_size == 1200, "UDP_COALESCED_INFO: the segment size");
  Check((a.flags & kHasLocal) && a.interface_index == 3, "and pktinfo beside it");

  std::vector<uint8_t> first;
  Append(&first, IPPROTO_UDP, kUdpCoalescedInfo, &segment, sizeof segment);
  Append(&first, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
  Completion b = Decode(first, first.size());
  Check(b.segment_size == 1200 && (b.flags & kHasLocal), "in either order");

  std::vector<uint8_t> pktinfo_only;
  Append(&pktinfo_only, IPPROTO_IP, IP_PKTINFO, &v4, sizeof v4);
  Check(Decode(pktinfo_only, pktinfo_only.size()).segment_size == 0, "no UDP_COALESCED_INFO: segment size 0");

  uint16_t short_payload = 1200;
  std::vector<uint8_t> too_short;
  Append(&too_short, IPPROTO_UDP, kUdpCoalescedInfo, &short_payload, sizeof short_payload);
  Check(Decode(too_short, too_short.size()).segment_size == 0, "a payload shorter than a DWORD is ignored");
  size_t cut = both.size() - WSA_CMSG_SPACE(sizeof(DWORD)) + WSA_CMSG_LEN(sizeof(DWORD)) - 1;
  Check(Decode(both, cut).segment_size == 0, "a message cut short is not read");

  int other = 1200;
  std::vector<uint8_t> other_level;
  Append(&other_level, IPPROTO_IP, kUdpCoalescedInfo, &other, sizeof other);
  Check(Decode(other_level, other_level.size()).segment_size == 0, "type 3 at another level is not UDP_COALESCED_INFO");

  // The split, as the iocp backend makes it: a 64 KiB buffer, bufferSize 2048.
  std::vector<uint8_t> data(kCoalescedBufferBytes);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>(i);
  std::vector<Completion> out(kMaxSegments);
  Completion whole = a;
  whole.data = data.data();
  whole.length = 3000;  // 1200 + 1200 + 600
  uint32_t n = SplitCoalesced(whole, 3000, whole.segment_size, 2048, out.data());
  Check(n == 3 && out[0].length == 1200 && out[1].data == data.data() + 1200 && out[2].length == 600,
        "3000 bytes of 1200-byte segments: 3 datagrams, the last 600");
  Check(out[2].interface_index == 3 && out[2].segment_size == 0, "each keeps the buffer's metadata");
  Completion missing = Decode(pktinfo_only, pktinfo_only.size());
  missing.data = data.data();
  missing.length = 3000;
  Check(SplitCoalesced(missing, 3000, missing.segment_size, 4096, out.data()) == 1 && out[0].length == 3000,
        "a buffer without UDP_COALESCED_INFO (the known Windows fault) is one datagram");
  n = SplitCoalesced(whole, 3000, whole.segment_size, 1000, out.data());
  Check(n == 3 && (out[0].flags & kTruncated) && out[0].length == 1000 && !(out[2].flags & kTruncated),
        "bufferSize bounds each datagram: those longer are cut and flagged");
  return Report();
}
