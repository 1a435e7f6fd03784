// Unit test of a crossing's bounds (native/batch.h): ItemsInCrossing splits a
// batch at kMaxCrossingBytes, and WorthLendingSlots decides which batches a
// backend hands over a slab at a time. Prints "N passed, N failed".
#include <cstdint>
#include <vector>

#include "check.h"
#include "../../native/batch.h"

using namespace dgram_ring;

int main() {
  const size_t row = kTableStride * sizeof(uint32_t);
  {
    // 1100 datagrams of 65000 bytes: 71.5 MB, more than one crossing carries.
    std::vector<Completion> items(1100);
    for (Completion& item : items) item.length = 65000;
    size_t first_bytes = 0;
    size_t first = ItemsInCrossing(items.data(), items.size(), &first_bytes);
    Check(first_bytes <= kMaxCrossingBytes, "a crossing carries at most kMaxCrossingBytes");
    Check(first_bytes + row + 65000 > kMaxCrossingBytes, "and as much as fits: one more would not");
    Check(first_bytes == first * (row + 65000), "its bytes are its rows and payloads");
    size_t rest_bytes = 0;
    size_t rest = ItemsInCrossing(items.data() + first, items.size() - first, &rest_bytes);
    Check(first + rest == items.size(), "the rest fits a second crossing");
    Check(rest_bytes == rest * (row + 65000), "with its own bytes");
  }
  {
    // One datagram always crosses, whatever its size.
    Completion big;
    big.length = 65535;
    size_t bytes = 0;
    Check(ItemsInCrossing(&big, 1, &bytes) == 1 && bytes == row + 65535, "one datagram always crosses");
  }
  {
    // Worth lending: payloads at least 1/8 of their buffers, summed over a
    // run that wraps the ring.
    std::vector<Completion> ring(8);
    for (Completion& item : ring) item.length = 256;
    Check(WorthLendingSlots(ring.data(), 8, 6, 4, 2048), "256 of 2048 bytes (1/8), wrapping: lent");
    Check(!WorthLendingSlots(ring.data(), 8, 6, 4, 2049), "256 of 2049 bytes: copied");
    ring[7].length = 0;
    Check(!WorthLendingSlots(ring.data(), 8, 6, 4, 2048), "one empty among them: below 1/8, copied");
    ring[0].length = 512;
    Check(WorthLendingSlots(ring.data(), 8, 6, 4, 2048), "a longer one makes up for it");
  }
  return Report();
}
