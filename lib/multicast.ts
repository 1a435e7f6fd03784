// Validation of the `multicast` option: the groups a socket joins, each
// resolved into what the native side reads (NativeMulticastJoin).
import net from 'node:net'
import os from 'node:os'
import type { NativeMulticastJoin } from './binding'
import { invalidArgType, invalidArgValueRange, outOfRange, unsupported } from './errors'

/**
 * A multicast group to join (the `multicast` option of {@link listen}).
 *
 * @example
 * { group: '239.1.2.3' }                                      // any interface (the OS picks by route)
 * { group: '239.1.2.3', interface: '192.168.1.10' }           // the interface with this IPv4 address
 * { group: 'ff12::1234', interface: 'eth0' }                  // by name (not on Windows)
 * { group: '232.1.1.1', source: '10.0.0.5', interface: 2 }    // source-specific, by interface index
 */
export interface MulticastMembership {
  /** The group: an IPv4 multicast address (224.0.0.0/4) on a `udp4` socket, IPv6 (ff00::/8) on a `udp6` one. */
  group: string
  /**
   * The interface to join on: its index (see `interfaceIndex` of a datagram, or `ip link`), its
   * name (`'eth0'`; not on Windows), or one of its addresses (IPv4 groups; IPv6 groups on
   * Linux/macOS, where the address is looked up in `os.networkInterfaces()`). Default: the OS
   * picks (by route).
   */
  interface?: string | number
  /** Join source-specifically (SSM, IGMPv3 / MLDv2): only datagrams from this unicast address arrive. */
  source?: string
}

function isMulticast(address: string, family: 4 | 6): boolean {
  if (family === 4) return (Number(address.split('.')[0]) & 0xf0) === 0xe0
  return /^ff/i.test(address)
}

// The name of the interface that has `address` (without its zone).
function interfaceWithAddress(address: string): string | undefined {
  const bare = address.split('%')[0].toLowerCase()
  for (const [name, entries] of Object.entries(os.networkInterfaces())) {
    if (entries?.some((entry) => entry.address.toLowerCase() === bare)) return name
  }
  return undefined
}

function resolveInterface(value: unknown, family: 4 | 6, join: NativeMulticastJoin): void {
  if (value === undefined) return
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 2 ** 32 - 1) throw outOfRange('multicast.interface', 'an integer >= 0 and <= 4294967295 (an interface index)', value)
    join.interfaceIndex = value
    return
  }
  if (typeof value !== 'string') throw invalidArgType('multicast.interface', 'of type string or number', value)
  const addressFamily = net.isIP(value)
  if (addressFamily === 0) {
    if (value === '' || value.includes('\0')) throw invalidArgValueRange('multicast.interface', 'must be an interface name, address or index', value)
    if (process.platform === 'win32') throw unsupported('A multicast interface by name', "give the interface's IPv4 address or its index")
    join.interfaceName = value
  } else if (addressFamily !== family) {
    throw invalidArgValueRange('multicast.interface', `is an IPv${addressFamily} address: the group is IPv${family}`, value)
  } else if (family === 4) {
    join.interfaceAddress = value
  } else {
    if (process.platform === 'win32') throw unsupported('An IPv6 multicast interface by address', 'give the interface index')
    const name = interfaceWithAddress(value)
    if (name === undefined) throw invalidArgValueRange('multicast.interface', 'is an address no network interface of this host has', value)
    join.interfaceName = name
  }
}

function resolveJoin(value: unknown, family: 4 | 6, type: string): NativeMulticastJoin {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgType('multicast', 'of type object or an array of objects', value)
  const { group, interface: iface, source } = value as Record<string, unknown>
  if (typeof group !== 'string') throw invalidArgType('multicast.group', 'of type string', group)
  if (net.isIP(group) !== family || !isMulticast(group, family)) {
    const range = family === 4 ? 'an IPv4 multicast address (224.0.0.0/4)' : 'an IPv6 multicast address (ff00::/8)'
    throw invalidArgValueRange('multicast.group', `must be ${range} on a '${type}' socket`, group)
  }
  const join: NativeMulticastJoin = { group, source: '', interfaceAddress: '', interfaceName: '', interfaceIndex: 0 }
  if (source !== undefined) {
    if (typeof source !== 'string') throw invalidArgType('multicast.source', 'of type string', source)
    if (net.isIP(source) !== family || isMulticast(source, family)) {
      throw invalidArgValueRange('multicast.source', `must be a unicast IPv${family} address (the group is IPv${family})`, source)
    }
    join.source = source
  }
  resolveInterface(iface, family, join)
  return Object.freeze(join)
}

/**
 * @internal Validates the `multicast` option for a socket of `type` (IPv6 when
 * `ipv6`): each entry is read once; throws TypeError / RangeError with a code.
 */
export function resolveMulticast(value: unknown, ipv6: boolean, type: string): readonly NativeMulticastJoin[] {
  if (value === undefined) return Object.freeze([])
  const entries = Array.isArray(value) ? [...(value as unknown[])] : [value]
  return Object.freeze(entries.map((entry) => resolveJoin(entry, ipv6 ? 6 : 4, type)))
}
