// stream.batches(): whole DatagramBatches as an async iterator, under the same
// credits as the Readable. It takes the stream's socket over (as dgram-ring/rx
// does): the ring is granted `highWaterMark` less the datagrams of the
// batches queued here, so a consumer that lags leaves fewer buffers posted.
import type { DatagramBatch } from './datagram'
import type { RingSocket } from './socket'
import { closedError } from './errors'
import { Credits } from './credits'

/** What batches() needs of the stream (DatagramStream provides it). */
export interface BatchSource {
  /** batches({recycle}): each batch's memory goes back to the ring once the consumer moves on. */
  readonly recycle: boolean
  readonly readableHighWaterMark: number
  readonly destroyed: boolean
  readonly errored: Error | null
  takeOver(onBatch: (batch: DatagramBatch) => void): RingSocket | undefined
  onEnd(listener: (error?: Error) => void): () => void
  destroy(): void
}

/** @internal the iterator behind DatagramStream.batches() */
export function iterateBatches(source: BatchSource): AsyncIterableIterator<DatagramBatch> {
  const queue: DatagramBatch[] = []
  let queued = 0 // datagrams in `queue`
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined

  const socket = source.takeOver((batch) => {
    queue.push(batch)
    queued += batch.length
    credits?.arrived(batch.length)
    wake?.()
  })
  const forget = source.onEnd((error) => {
    ended = true
    failure ??= error
    wake?.()
  })
  if (socket === undefined) {
    ended = true
    failure = source.errored ?? closedError('batches()')
  }

  if (source.recycle) socket?.recycling()
  const credits = socket === undefined ? undefined : new Credits(socket, source.readableHighWaterMark)
  const regrant = (): void => {
    if (!ended) credits?.topUp(queued)
  }
  regrant()

  // With recycle: the batch the consumer has, given back when it asks for the next.
  let current: DatagramBatch | undefined
  const moveOn = (): void => {
    current?.giveBack()
    current = undefined
  }

  const finish = (): IteratorResult<DatagramBatch> => {
    moveOn()
    forget()
    return { done: true, value: undefined }
  }

  return {
    async next(): Promise<IteratorResult<DatagramBatch>> {
      moveOn()
      for (;;) {
        const batch = queue.shift()
        if (batch !== undefined) {
          queued -= batch.length
          regrant()
          if (source.recycle) current = batch
          return { done: false, value: batch }
        }
        if (failure !== undefined) {
          const error = failure
          failure = undefined
          forget()
          throw error
        }
        if (ended) return finish()
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    },
    // Leaving the loop early (break, return, throw) ends the stream, as
    // leaving a Readable's for-await does: nothing will read the rest.
    async return(): Promise<IteratorResult<DatagramBatch>> {
      if (!ended && !source.destroyed) source.destroy()
      ended = true
      // Never handed out: no one can read them.
      for (const batch of queue) batch.giveBack()
      queue.length = 0
      return finish()
    },
    [Symbol.asyncIterator]() {
      return this
    },
  }
}
