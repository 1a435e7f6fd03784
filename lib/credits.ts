// Credits for a consumer that buffers datagrams: the ring is granted
// `highWaterMark` less what the consumer still holds, and only in steps of a
// quarter of highWaterMark, so that a consumer slower than the network still
// gets batches rather than one crossing a datagram. DatagramStream (its
// Readable buffer) and batches() (its queue of batches) grant this way.
import type { RingSocket } from './socket'

/** @internal */
export class Credits {
  readonly #socket: RingSocket
  readonly #highWaterMark: number
  readonly #step: number
  #granted = 0 // the last grant less what arrived since

  constructor(socket: RingSocket, highWaterMark: number) {
    this.#socket = socket
    this.#highWaterMark = highWaterMark
    this.#step = Math.max(1, Math.floor(highWaterMark / 4))
  }

  /** `count` datagrams arrived: each used a credit. */
  arrived(count: number): void {
    this.#granted = Math.max(0, this.#granted - count)
  }

  /** The consumer holds `held` datagrams: grant up to highWaterMark, if that is a step more. */
  topUp(held: number): void {
    const free = this.#highWaterMark - held
    if (free - this.#granted < this.#step) return
    this.#granted = free
    this.#socket.grant(free)
  }
}
