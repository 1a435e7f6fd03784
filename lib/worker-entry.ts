// The thread listenWorkers() starts for each worker (its own event loop). It
// waits for its WorkerInit on parentPort, imports the user's module, opens its
// ring on the group's port (reusePort, in the order the main thread starts
// the workers: the order of the reuseport group), reports it, and calls the
// module's default export with the stream. From then on parentPort belongs to
// the user; this file speaks only on its own control port (worker-protocol.ts).
//
// The worker is done when its stream is closed (close() from the main
// thread: draining, so every datagram that reached the socket is delivered
// and counted; or the user's function failing: discarded, counted) and the
// user's function has settled. It then reports the ring's final counters and
// the main thread ends the thread (until then the control port keeps it
// alive, so that its last message is never overtaken by its exit).
import { parentPort, workerData } from 'node:worker_threads'
import { invalidArgValue } from './errors'
import type { RingStats } from './socket'
import { listen, type DatagramStream } from './stream'
import type { WorkerFunction } from './workers'
import { serializeError, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol'

// A real import(): compiled to CommonJS, TypeScript would turn `import(x)`
// into require(x), which cannot load an ES module on Node 20.
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>

const NO_STATS: RingStats = { received: 0, bytes: 0, truncated: 0, batches: 0, discarded: 0, transientErrors: 0, posted: 0, peakPosted: 0, coalesced: 0 }

// Runs on the worker's loop thread, once.
async function run(init: WorkerInit): Promise<void> {
  const { control } = init
  const post = (message: FromWorker): void => control.postMessage(message)
  let stream: DatagramStream | undefined
  let closeRequested = false
  let finishing: Promise<void> | undefined
  let settled: Promise<void> = Promise.resolve()
  // Closes the stream (unless it is already), waits for the user's function,
  // reports the final counters. Once.
  const finish = (): Promise<void> =>
    (finishing ??= (async () => {
      await stream?.close()
      await settled
      // The control port stays open, keeping the thread alive: the main thread ends it on this message.
      post({ type: 'closed', stats: stream?.stats() ?? { ...NO_STATS } })
    })())
  control.on('message', (message: ToWorker) => {
    if (message.type === 'stats') post({ type: 'stats', id: message.id, stats: stream?.stats() ?? { ...NO_STATS } })
    else if (message.type === 'close') {
      closeRequested = true
      if (stream !== undefined) void finish()
    }
  })

  let main: WorkerFunction
  try {
    const module = await importModule(init.module)
    if (typeof module.default !== 'function') {
      throw invalidArgValue('workerFile', 'must have a default export that is a function (stream, context)', init.module, 'argument')
    }
    main = module.default as WorkerFunction
    stream = await listen(init.options)
  } catch (error) {
    post({ type: 'error', error: serializeError(error) }) // the main thread ends the thread on it
    return
  }
  post({ type: 'listening', address: stream.address() })
  const context = { index: init.index, workers: init.workers, workerData: workerData as unknown }
  let result: Promise<void>
  try {
    result = Promise.resolve(main(stream, context))
  } catch (error) {
    result = Promise.reject(error)
  }
  settled = result.then(
    () => undefined,
    (error: unknown) => {
      // Nothing reads the stream any more: what the kernel holds is thrown away, counted.
      post({ type: 'error', error: serializeError(error) })
      stream?.destroy()
      void finish()
    },
  )
  if (closeRequested) void finish()
}

if (parentPort === null) throw new Error('dgram-ring: worker-entry.js runs only as a thread that listenWorkers() started')
parentPort.once('message', (init: WorkerInit) => void run(init))
