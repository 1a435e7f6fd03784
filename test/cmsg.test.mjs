// Native unit tests: the control-data decoder against malformed and truncated
// buffers (test/native/cmsg_test.cc), the 64-bit drop counter across the
// kernel counter's wrap (test/native/drop_counter_test.cc), and the split of a
// coalesced (UDP_GRO) buffer into datagrams (test/native/coalesce_test.cc),
// and a crossing's bounds (test/native/batch_test.cc).
import t from 'tap'
import { runNativeUnit } from './lib/native-unit.mjs'

const skip = process.platform === 'win32' ? 'POSIX layout; Windows shares the code' : false

t.test('DecodeControl bounds-checks every length', { skip }, async (t) => runNativeUnit(t, 'cmsg_test', ['cmsg.cc']))

t.test('kernelDrops never wraps: DropCounter accumulates the 32-bit kernel counter in 64 bits', { skip }, async (t) => runNativeUnit(t, 'drop_counter_test'))

t.test('SplitCoalesced splits a UDP_GRO buffer into datagrams and distrusts odd segment sizes', { skip }, async (t) =>
  runNativeUnit(t, 'coalesce_test', ['coalesce.cc']))

t.test('ItemsInCrossing splits a batch at 64 MiB; WorthLendingSlots decides which go a slab at a time', { skip }, async (t) =>
  runNativeUnit(t, 'batch_test', ['batch.cc']))
