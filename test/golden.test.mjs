// The command's output for a corpus of syslog and StatsD datagrams
// (test/golden/corpus.mjs: well-formed, truncated, malformed, not UTF-8)
// stays exactly what it was when the golden files were written, line for
// line, whatever the formatting path does to be fast. The corpus goes
// through the command's batch formatter as batches laid out as the native
// ring lays them (test/lib/batch.mjs).
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { root } from './lib/helpers.mjs'
import { corpus } from './golden/corpus.mjs'
import { batchesOf } from './lib/batch.mjs'

const { batchFormatter } = await import(path.join(root, 'dist', 'cli', 'format.js'))
const { LineBuffer } = await import(path.join(root, 'dist', 'cli', 'output.js'))

/** The command's output for `datagrams`, and where each datagram's lines end. */
function format(command, datagrams) {
  const write = batchFormatter(command)
  const lines = new LineBuffer()
  let text = ''
  for (const batch of batchesOf(datagrams)) {
    write(batch, 0, batch.length, lines)
    const { bytes, ends } = lines.take()
    if (ends.length !== batch.length || ends.at(-1) !== bytes.length) throw new Error('a datagram without its end')
    text += bytes.toString()
  }
  return text
}

const cases = [
  ['raw.ndjson', { parse: 'raw' }, 'syslog'],
  ['raw-statsd.ndjson', { parse: 'raw' }, 'statsd'],
  ['syslog.ndjson', { parse: 'syslog', timeZone: 'UTC' }, 'syslog'],
  ['syslog-tokyo.ndjson', { parse: 'syslog', timeZone: 'Asia/Tokyo' }, 'syslog'],
  ['statsd.ndjson', { parse: 'statsd' }, 'statsd'],
  ['raw-hex.ndjson', { parse: 'raw', encoding: 'hex' }, 'statsd'],
]

for (const [file, command, kind] of cases) {
  t.test(`${file}: --parse ${command.parse}${command.timeZone ? ` --timezone ${command.timeZone}` : ''}${command.encoding ? ` --encoding ${command.encoding}` : ''}`, async (t) => {
    const expected = fs.readFileSync(path.join(root, 'test', 'golden', file), 'utf8').split('\n')
    const actual = format(command, corpus(kind)).split('\n')
    t.equal(actual.length, expected.length, 'as many lines')
    for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) t.equal(actual[i], expected[i], `line ${i + 1}`)
    for (const line of actual.filter(Boolean)) JSON.parse(line)
  })
}
