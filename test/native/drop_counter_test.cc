// Unit test of DropCounter (native/drop_counter.h): the kernel's 32-bit drop
// counter accumulated into 64 bits across wraps. Prints "N passed, N failed".
#include <cstdint>
#include <cstdio>

#include "check.h"
#include "../../native/drop_counter.h"

using dgram_ring::DropCounter;

int main() {
  {
    DropCounter counter;
    Check(counter.Total() == 0, "a new counter is 0");
    Check(counter.Update(0) == 0, "no drops");
    Check(counter.Update(744) == 744, "first reading");
    Check(counter.Update(744) == 744, "unchanged");
  }
  {
    // One million drops a second for 80 minutes: past 2^32, read every minute.
    DropCounter counter;
    uint64_t truth = 0;
    for (int minute = 0; minute < 80; minute++) {
      truth += 60'000'000;
      counter.Update(static_cast<uint32_t>(truth));
    }
    Check(counter.Total() == truth, "80 minutes at 1 M/s: no wrap");
    Check(counter.Total() > UINT32_MAX, "the total passes 2^32");
  }
  {
    DropCounter counter;
    counter.Update(UINT32_MAX - 5);
    Check(counter.Update(10) == uint64_t{UINT32_MAX} - 5 + 16, "a reading just past the wrap");
  }
  return Report();
}
