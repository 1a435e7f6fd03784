// Fault injection for the sanitizer build only (npm run test:asan defines
// DGRAM_RING_FAULTS): failures that a test cannot provoke from outside, such
// as an N-API allocation that fails or a receive that returns ENOBUFS. In
// every other build Fault() is constant false and compiles away.
//
//   DGRAM_RING_FAULT_<SITE>="N=ERRNO[,N=ERRNO…]"
// makes the Nth call (1-based, counted per process) at SITE fail with the
// positive errno ERRNO. Sites: BUFFER (the batch's napi_create_buffer),
// RECV (the receive call of the POSIX backend).
#ifndef DGRAM_RING_FAULTS_H_
#define DGRAM_RING_FAULTS_H_

#ifdef DGRAM_RING_FAULTS
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#endif

namespace dgram_ring {

enum class FaultSite { kBuffer, kRecv };

#ifdef DGRAM_RING_FAULTS
// Any thread. True if this call at `site` is to fail; *error is then its errno.
inline bool Fault(FaultSite site, int* error) {
  static std::atomic<long> calls[2];
  const char* name = site == FaultSite::kBuffer ? "DGRAM_RING_FAULT_BUFFER" : "DGRAM_RING_FAULT_RECV";
  long call = ++calls[static_cast<int>(site)];
  const char* spec = getenv(name);
  while (spec != nullptr && *spec != '\0') {
    char* end = nullptr;
    long n = strtol(spec, &end, 10);
    int err = *end == '=' ? static_cast<int>(strtol(end + 1, &end, 10)) : 0;
    if (n == call) {
      *error = err;
      return true;
    }
    spec = strchr(end, ',');
    if (spec != nullptr) spec++;
  }
  return false;
}
#else
inline bool Fault(FaultSite, int*) { return false; }
#endif

}  // namespace dgram_ring

#endif  // DGRAM_RING_FAULTS_H_
