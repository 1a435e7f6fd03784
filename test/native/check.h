// The native unit tests' one assertion: counts, prints what failed, and the
// closing line "N passed, N failed" that test/lib/native-unit.mjs reads.
#ifndef DGRAM_RING_TEST_CHECK_H_
#define DGRAM_RING_TEST_CHECK_H_

#include <cstdio>

static int passed = 0, failed = 0;

static void Check(bool ok, const char* what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("not ok: %s\n", what);
  }
}

// The closing line, and the exit status.
static int Report() {
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

#endif  // DGRAM_RING_TEST_CHECK_H_
