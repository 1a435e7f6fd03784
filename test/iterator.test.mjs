// DatagramStream's hand-written async iterator (lib/stream-iterator.ts)
// against Readable's own: the same scenarios run on both over plain
// Readables, step by step (each result or error, whether the stream was
// destroyed, its listeners), then the DatagramStream cases: leaving the loop
// destroys it, iterator({ destroyOnReturn: false }) keeps it, close() drains
// into the loop, destroy() while waiting, mixing with read(), credits.
import t from 'tap'
import path from 'node:path'
import { Readable } from 'node:stream'
import { setImmediate as tick } from 'node:timers/promises'
import { root, ring, listenFor, client, sendAll, sleep } from './lib/helpers.mjs'

const { ReadableIterator } = await import(path.join(root, 'dist', 'stream-iterator.js'))

/** Readable's own iterator, and ours, over the same kind of stream. */
const implementations = {
  node: (stream, options) => Readable.prototype.iterator.call(stream, options),
  ours: (stream, options) => new ReadableIterator(stream, options?.destroyOnReturn !== false),
}

/** Runs a scenario and records what each step saw. */
async function trace(implementation, scenario, streamOptions = {}) {
  const stream = new Readable({ objectMode: true, read() {}, ...streamOptions })
  const log = []
  const state = (what) => log.push({ what, destroyed: stream.destroyed, readable: stream.listenerCount('readable'), ended: stream.readableEnded })
  const settle = async (what, promise) => {
    try {
      const result = await promise
      state({ [what]: result })
    } catch (error) {
      state({ [what]: 'rejected', message: error.message, code: error.code, name: error.name })
    }
  }
  await scenario({ stream, iterator: (options) => implementations[implementation](stream, options), settle, state })
  await tick()
  state('after')
  return log
}

const scenarios = {
  'reads what is buffered, then ends': async ({ stream, iterator, settle }) => {
    const it = iterator()
    stream.push('a'), stream.push('b'), stream.push(null)
    for (let i = 0; i < 4; i++) await settle('next', it.next())
  },
  'waits for what comes later': async ({ stream, iterator, settle }) => {
    const it = iterator()
    const first = it.next()
    await tick()
    stream.push('a')
    await settle('next', first)
    setTimeout(() => stream.push('b'), 5)
    await settle('next', it.next())
    setTimeout(() => stream.push(null), 5)
    await settle('next', it.next())
  },
  'for await with break destroys': async ({ stream, iterator, state }) => {
    stream.push('a'), stream.push('b')
    for await (const chunk of { [Symbol.asyncIterator]: () => iterator() }) {
      state({ chunk })
      break
    }
  },
  'return() destroys; destroyOnReturn: false only stops listening': async ({ stream, iterator, settle }) => {
    stream.push('a'), stream.push('b')
    const it = iterator({ destroyOnReturn: false })
    await settle('next', it.next())
    await settle('return', it.return('value'))
    await settle('next', it.next())
    await settle('read', Promise.resolve(stream.read()))
  },
  'return() with the default': async ({ stream, iterator, settle }) => {
    stream.push('a')
    const it = iterator()
    await settle('next', it.next())
    await settle('return', it.return(Promise.resolve('awaited')))
  },
  'return() and throw() before the first next() touch nothing': async ({ stream, iterator, settle }) => {
    stream.push('a')
    await settle('return', iterator().return())
    await settle('throw', iterator().throw(new Error('early')))
    await settle('read', Promise.resolve(stream.read()))
  },
  'throw() in the loop destroys and rejects with it': async ({ stream, iterator, settle }) => {
    stream.push('a'), stream.push('b')
    const it = iterator()
    await settle('next', it.next())
    await settle('throw', it.throw(new Error('from the loop')))
    await settle('next', it.next())
  },
  'throw() with destroyOnReturn: false still destroys': async ({ stream, iterator, settle }) => {
    stream.push('a')
    const it = iterator({ destroyOnReturn: false })
    await settle('next', it.next())
    await settle('throw', it.throw(new Error('from the loop')))
  },
  'an error while waiting is thrown from next()': async ({ stream, iterator, settle }) => {
    const it = iterator()
    const pending = it.next()
    await tick()
    stream.destroy(Object.assign(new Error('boom'), { code: 'EBOOM' }))
    await settle('next', pending)
    await settle('next', it.next())
  },
  'an error with datagrams buffered': async ({ stream, iterator, settle }) => {
    stream.push('a'), stream.push('b')
    const it = iterator()
    await settle('next', it.next())
    stream.destroy(new Error('boom'))
    await settle('next', it.next())
    await settle('next', it.next())
  },
  'destroyed while waiting: premature close': async ({ stream, iterator, settle }) => {
    const it = iterator()
    const pending = it.next()
    await tick()
    stream.destroy()
    await settle('next', pending)
  },
  'destroyed before the first next()': async ({ stream, iterator, settle }) => {
    stream.push('a')
    const it = iterator()
    stream.destroy()
    await settle('next', it.next())
    await settle('next', it.next())
  },
  // The stream's state is seen once all have settled: the two settle in different microtask turns.
  'calls made while one waits take their turn': async ({ stream, iterator, state }) => {
    const it = iterator()
    const calls = [it.next(), it.next(), it.return('r'), it.next()]
    await tick()
    stream.push('a')
    await tick()
    stream.push('b')
    state({ calls: await Promise.all(calls) })
  },
  'concurrent calls across the end': async ({ stream, iterator, settle }) => {
    const it = iterator()
    const calls = [it.next(), it.next(), it.next()]
    stream.push('a'), stream.push(null)
    for (const call of calls) await settle('call', call)
  },
  'mixed with read()': async ({ stream, iterator, settle }) => {
    stream.push('a'), stream.push('b'), stream.push('c')
    const it = iterator()
    await settle('read', Promise.resolve(stream.read()))
    await settle('next', it.next())
    await settle('read', Promise.resolve(stream.read()))
    await settle('read', Promise.resolve(stream.read()))
    const pending = it.next()
    await tick()
    stream.push('d'), stream.push(null)
    await settle('next', pending)
    await settle('next', it.next())
  },
  'end with destroyOnReturn: false leaves autoDestroy to destroy': async ({ stream, iterator, settle }) => {
    stream.push(null)
    const it = iterator({ destroyOnReturn: false })
    await settle('next', it.next())
  },
}

for (const [name, scenario] of Object.entries(scenarios)) {
  t.test(name, async (t) => {
    t.same(await trace('ours', scenario), await trace('node', scenario), 'as Readable’s iterator')
    t.same(await trace('ours', scenario, { autoDestroy: false }), await trace('node', scenario, { autoDestroy: false }), 'autoDestroy: false')
  })
}

t.test('an error thrown by read() is thrown from next()', async (t) => {
  const run = async (implementation) => {
    const stream = new Readable({ objectMode: true, read() {} })
    // read(0) is Readable's own (on 'readable' listening); a read for data fails.
    stream.read = (size) => {
      if (size === 0) return Readable.prototype.read.call(stream, 0)
      throw new Error('read failed')
    }
    const it = implementations[implementation](stream)
    const error = await it.next().then(() => null, (e) => e.message)
    return { error, destroyed: stream.destroyed }
  }
  t.same(await run('ours'), await run('node'))
})

t.test('the iterator is an async iterator as a generator is', async (t) => {
  const stream = new Readable({ objectMode: true, read() {} })
  const it = new ReadableIterator(stream, true)
  t.equal(it[Symbol.asyncIterator](), it)
  t.equal(it.stream, stream)
  const generatorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(Readable.prototype.iterator.call(stream)))
  for (const key of Reflect.ownKeys(Object.getPrototypeOf(generatorPrototype))) t.ok(key in it, `has ${String(key)}`)
})

// DatagramStream: the iterator over the real ring.

async function setUp(t, options = {}) {
  const stream = await listenFor(t, { address: '127.0.0.1', ...options })
  const sender = client(t)
  const send = (texts) => sendAll(sender, texts.map((text) => Buffer.from(text)), stream.address().port, '127.0.0.1')
  return { stream, send }
}

t.test('DatagramStream: for await takes its own iterator, and break destroys the stream', async (t) => {
  const { stream, send } = await setUp(t)
  t.type(stream[Symbol.asyncIterator](), ReadableIterator)
  await send(['one', 'two', 'three'])
  const got = []
  for await (const d of stream) {
    got.push(d.data.toString())
    if (got.length === 2) break
  }
  t.same(got, ['one', 'two'])
  t.ok(stream.destroyed, 'destroyed on break')
})

t.test('DatagramStream: iterator({ destroyOnReturn: false }) leaves the stream readable', async (t) => {
  const { stream, send } = await setUp(t)
  await send(['one', 'two'])
  for await (const d of stream.iterator({ destroyOnReturn: false })) {
    t.equal(d.data.toString(), 'one')
    break
  }
  t.notOk(stream.destroyed)
  t.equal(stream.listenerCount('readable'), 0, 'stopped listening')
  for await (const d of stream) {
    t.equal(d.data.toString(), 'two', 'the next loop goes on where the first stopped')
    break
  }
})

t.test('DatagramStream: iterator() checks its options as Readable does', async (t) => {
  const { stream } = await setUp(t)
  for (const bad of [null, 1, 'x', []]) t.throws(() => stream.iterator(bad), { code: 'ERR_INVALID_ARG_TYPE' })
  t.type(stream.iterator(), ReadableIterator)
  t.type(stream.iterator({}), ReadableIterator)
})

t.test('DatagramStream: close() ends the loop after what was received', async (t) => {
  const { stream, send } = await setUp(t)
  await send(['one', 'two', 'three'])
  await sleep(50)
  const got = []
  const loop = (async () => {
    for await (const d of stream) {
      got.push(d.data.toString())
      if (got.length === 1) void stream.close()
    }
  })()
  await loop
  t.same(got, ['one', 'two', 'three'], 'every datagram received, then done')
  t.ok(stream.destroyed)
})

t.test('DatagramStream: destroyed while the loop waits', async (t) => {
  const { stream } = await setUp(t)
  setTimeout(() => stream.destroy(), 20)
  await t.rejects(
    (async () => {
      for await (const d of stream) t.fail(`no datagram expected: ${d}`)
    })(),
    { code: 'ERR_STREAM_PREMATURE_CLOSE' },
  )
  const failed = await listenFor(t, { address: '127.0.0.1' })
  setTimeout(() => failed.destroy(Object.assign(new Error('gone'), { code: 'EGONE' })), 20)
  await t.rejects(
    (async () => {
      for await (const d of failed) t.fail(`no datagram expected: ${d}`)
    })(),
    { code: 'EGONE' },
  )
})

t.test('DatagramStream: mixed with read(), and credits granted as datagrams are read', async (t) => {
  const { stream, send } = await setUp(t, { highWaterMark: 8 })
  await send(['a', 'b', 'c', 'd'])
  await sleep(50)
  const it = stream[Symbol.asyncIterator]()
  t.equal((await it.next()).value.data.toString(), 'a')
  t.equal(stream.read().data.toString(), 'b')
  t.equal((await it.next()).value.data.toString(), 'c')
  t.equal(stream.read().data.toString(), 'd')
  // More than highWaterMark in total: the loop gets them only if reading grants the ring new credits.
  const texts = Array.from({ length: 40 }, (_, i) => `m${i}`)
  const got = []
  const loop = (async () => {
    for (;;) {
      const { value } = await it.next()
      got.push(value.data.toString())
      if (got.length === texts.length) break
    }
  })()
  for (let i = 0; i < texts.length; i += 4) {
    await send(texts.slice(i, i + 4))
    await sleep(5)
  }
  await loop
  t.same(got, texts)
  t.ok(stream.stats().received >= 44)
  await it.return()
  t.ok(stream.destroyed)
})

t.test('DatagramStream: a loop ended by end-of-stream leaves nothing listening', async (t) => {
  const stream = new ring.DatagramStream({ address: '127.0.0.1' })
  await new Promise((resolve) => stream.once('listening', resolve))
  const done = (async () => {
    let n = 0
    for await (const d of stream) n += d ? 1 : 0
    return n
  })()
  await sleep(10)
  await stream.close()
  t.equal(await done, 0)
  t.ok(stream.destroyed)
})
