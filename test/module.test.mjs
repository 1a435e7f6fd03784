// The package loads with both `import` and `require`, and (when asked) from
// its prebuild rather than a local build.
import t from 'tap'
import { createRequire } from 'node:module'
import { root } from './lib/helpers.mjs'

const require = createRequire(import.meta.url)

t.test('ESM named imports and CommonJS require give the same API', async (t) => {
  const esm = await import('dgram-ring')
  const cjs = require('dgram-ring')
  for (const name of ['listen', 'DatagramStream', 'RingSocket', 'Datagram', 'DatagramBatch', 'backends']) {
    t.ok(esm[name] !== undefined, `import { ${name} }`)
    t.equal(esm[name], cjs[name], `${name} is the same object`)
  }
  t.equal(typeof esm.default.listen, 'function', 'default import is the CommonJS exports')
})

t.test('PREBUILDS_ONLY=1 loads the prebuild', { skip: process.env.PREBUILDS_ONLY ? false : 'set PREBUILDS_ONLY=1 after npm run prebuilds' }, async (t) => {
  const where = require('node-gyp-build').resolve(root)
  t.match(where, new RegExp(`prebuilds[\\\\/]${process.platform}-${process.arch}[\\\\/]`), where)
  const stream = await require('dgram-ring').listen({ address: '127.0.0.1' })
  t.ok(stream.address().port > 0)
  await stream.close()
})
