// A batch's lines as bytes, for one write: encoded line by line into a buffer
// that is used again as long as the output holds none of it, rather than
// joined into one long string first (which the engine must flatten, and
// allocate anew, for every batch).
import { Buffer } from 'node:buffer'

const INITIAL_BYTES = 256 * 1024

/** What take() hands over: the bytes, and where each datagram's lines end in them. */
export interface Lines {
  bytes: Buffer
  ends: number[]
}

export class LineBuffer {
  #buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES)
  #length = 0
  #ends: number[] = []

  /** Appends a line (or lines) of text. */
  add(text: string): void {
    // UTF-8 takes at most 3 bytes a UTF-16 unit.
    const room = this.#length + text.length * 3
    if (room > this.#buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(room, this.#buffer.length * 2))
      this.#buffer.copy(grown, 0, 0, this.#length)
      this.#buffer = grown
    }
    this.#length += this.#buffer.write(text, this.#length, 'utf8')
  }

  /** The lines of one datagram end here. */
  endDatagram(): void {
    this.#ends.push(this.#length)
  }

  get length(): number {
    return this.#length
  }

  /** The bytes added since the last take, to be written; the buffer is used again for the next ones. */
  take(): Lines {
    const lines = { bytes: this.#buffer.subarray(0, this.#length), ends: this.#ends }
    this.#length = 0
    this.#ends = []
    return lines
  }

  /** The output still holds what take() gave it: leave that to the output, and go on in a new buffer. */
  detach(): void {
    this.#buffer = Buffer.allocUnsafeSlow(this.#buffer.length)
  }
}
