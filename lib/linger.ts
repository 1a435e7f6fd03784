// Where `linger` can be had, asked without loading the addon (the command
// decides its default from it before it loads the library).

/** @internal DGRAM_RING_BACKEND, the default backend of the process (set but empty is unset). */
export function environmentBackend(): string | undefined {
  return process.env.DGRAM_RING_BACKEND || undefined
}

/**
 * @internal Why `linger` cannot be had with `backend` (given, else the environment's, else 'auto'):
 * there is no receive thread of ours to hold datagrams. Undefined where it can.
 */
export function lingerUnavailable(backend: string | undefined): string | undefined {
  if (process.platform === 'win32') return 'Windows receives are posted buffers, with no receive thread to hold them'
  if ((backend ?? environmentBackend()) === 'io_uring') return 'the io_uring backend reaps on the event loop, with no receive thread to hold datagrams'
  return undefined
}
