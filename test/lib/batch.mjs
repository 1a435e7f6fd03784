// DatagramBatch objects built as the native ring lays them out (the table,
// then the payloads), from datagrams given as plain data: for tests of the
// code that reads a batch's table and bytes directly.
import path from 'node:path'
import net from 'node:net'
import { pathToFileURL } from 'node:url'
import { root } from './helpers.mjs'

const { binding } = await import(pathToFileURL(path.join(root, 'dist', 'binding.js')).href)
const { DatagramBatch } = await import(pathToFileURL(path.join(root, 'dist', 'datagram.js')).href)
const T = binding.table
const F = binding.flags

// The 4 or 16 bytes of a numeric address.
function addressBytes(address) {
  if (net.isIPv4(address)) return { bytes: address.split('.').map(Number), ipv6: false }
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address)
  if (v4) return { bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4[1].split('.').map(Number)], ipv6: true }
  throw new Error(`test helper: unsupported address ${address}`)
}

/**
 * The fields the command writes before a datagram's payload or records, as
 * the object that `JSON.stringify({ ...fields, ...record })` would spread:
 * what a line written from the bytes must equal.
 */
export function lineFields(d, receivedAt) {
  const fields = { remoteAddress: d.remoteAddress, remotePort: d.remotePort }
  if (d.localAddress !== undefined) Object.assign(fields, { localAddress: d.localAddress, interfaceIndex: d.interfaceIndex })
  return Object.assign(fields, { receivedAt: new Date(receivedAt).toISOString(), size: d.data.length, truncated: d.truncated })
}

/**
 * One batch of `datagrams` ({ data, remoteAddress, remotePort, localAddress?,
 * interfaceIndex?, truncated }), received at `receivedAt`.
 */
export function makeBatch(datagrams, receivedAt) {
  const tableBytes = datagrams.length * T.stride * 4
  const buffer = new ArrayBuffer(tableBytes + datagrams.reduce((sum, d) => sum + d.data.length, 0) + 64)
  const table = new Uint32Array(buffer, 0, datagrams.length * T.stride)
  const bytes = new Uint8Array(buffer)
  // Bytes after the last payload that no datagram owns: a scanner reading past its datagram would see them.
  bytes.fill(0x41, buffer.byteLength - 64)
  let offset = tableBytes
  datagrams.forEach((d, i) => {
    const row = i * T.stride
    table[row + T.offset] = offset
    table[row + T.length] = d.data.length
    bytes.set(d.data, offset)
    offset += d.data.length
    table[row + T.remotePort] = d.remotePort
    const remote = addressBytes(d.remoteAddress)
    bytes.set(remote.bytes, (row + T.remoteAddress) * 4)
    let flags = (remote.ipv6 ? F.remoteIPv6 : 0) | (d.truncated ? F.truncated : 0)
    if (d.localAddress !== undefined) {
      const local = addressBytes(d.localAddress)
      bytes.set(local.bytes, (row + T.localAddress) * 4)
      table[row + T.interfaceIndex] = d.interfaceIndex
      flags |= F.hasLocal | (local.ipv6 ? F.localIPv6 : 0)
    }
    table[row + T.flags] = flags
  })
  const batch = new DatagramBatch(buffer, datagrams.length)
  if (receivedAt !== undefined) batch.receivedAt = receivedAt
  return batch
}

/** `datagrams` as batches of those that share their receivedAt, in order. */
export function batchesOf(datagrams) {
  const batches = []
  for (let i = 0; i < datagrams.length; ) {
    let j = i + 1
    while (j < datagrams.length && datagrams[j].receivedAt === datagrams[i].receivedAt) j++
    batches.push(makeBatch(datagrams.slice(i, j), datagrams[i].receivedAt))
    i = j
  }
  return batches
}
