// The worker module of bench/workers.mjs: reads its stream as a consumer that
// keeps up does (the payload's length of each datagram), to the end.
export default async function (stream) {
  let bytes = 0
  for await (const d of stream) bytes += d.data.length
  return void bytes
}
