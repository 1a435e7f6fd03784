/**
 * dgram-ring: UDP receive through a ring of posted kernel buffers, delivered
 * in batches, as a Readable (and, from `dgram-ring/rx`, an Observable).
 * @packageDocumentation
 */
export { listen, DatagramStream, type BatchesOptions } from './stream'
export { RingSocket, type ListenOptions, type CloseOptions, type RingStats, type AddressInfo, type SocketType, type BackendName, type Balance } from './socket'
export { listenWorkers, WorkerGroup, type WorkersOptions, type WorkerContext, type WorkerFunction, type WorkersStats, type WorkerError } from './workers'
export { Datagram, DatagramBatch, type DatagramJSON, type DatagramObject, type AddressFamily } from './datagram'
export { DatagramSender, type SendOptions, type OutgoingDatagram } from './sender'
export type { CodedError, SystemError, DgramRingErrorCode } from './errors'
export type { MulticastMembership } from './multicast'

import { binding } from './binding'

/**
 * The receive backends this build has that can run in this process, fastest first (what `backend: 'auto'`
 * picks from). On Linux `'recvmmsg'`, and `'io_uring'` where the kernel (6.0+) and its policy allow it.
 */
export const backends: readonly string[] = Object.freeze([...binding.backends])
