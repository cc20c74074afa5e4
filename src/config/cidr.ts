/**
 * IP addresses and CIDR blocks (`10.0.0.0/8`, `fd00::/8`, `::ffff:10.0.0.0/104`), and the
 * matcher used per request to decide whether a peer is a trusted proxy.
 *
 * IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is treated as the IPv4 address it carries, both in
 * blocks and in addresses to match: a dual-stack listener reports IPv4 peers in that form,
 * and `10.0.0.0/8` must still match them.
 */
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';
import type { CidrBlock } from './types';

export type IpFamily = 'ipv4' | 'ipv6';

export interface ParsedIp {
  readonly family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: readonly number[];
}

export type CidrParseResult =
  | { readonly ok: true; readonly block: CidrBlock }
  | { readonly ok: false; readonly message: string };

const IPV4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** Parses an IPv4 or IPv6 address (an IPv6 zone such as `%eth0` is ignored). IPv4-mapped IPv6 comes back as IPv4. */
export function parseIp(text: string): ParsedIp | undefined {
  if (typeof text !== 'string') return undefined;
  const zone = text.indexOf('%');
  const bare = zone >= 0 ? text.slice(0, zone) : text;
  if (isIPv4(bare)) return { family: 'ipv4', bytes: bare.split('.').map(Number) };
  if (!isIPv6(bare)) return undefined;
  const bytes = ipv6Bytes(bare);
  if (isIpv4Mapped(bytes)) return { family: 'ipv4', bytes: bytes.slice(12) };
  return { family: 'ipv6', bytes };
}

/**
 * Parses `address/prefix`, or a bare address meaning a single host (/32 or /128).
 * Host bits below the prefix are cleared: `10.1.2.3/8` is the block `10.0.0.0/8`.
 */
export function parseCidr(text: string): CidrParseResult {
  if (typeof text !== 'string') return { ok: false, message: 'a CIDR block must be a string such as 10.0.0.0/8' };
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash >= 0 ? trimmed.slice(0, slash) : trimmed;
  const prefixText = slash >= 0 ? trimmed.slice(slash + 1) : undefined;
  if (addressText.includes('%')) {
    return { ok: false, message: `invalid CIDR block "${text}": zone ids (%...) are not allowed` };
  }
  const family: IpFamily | undefined = isIPv4(addressText) ? 'ipv4' : isIPv6(addressText) ? 'ipv6' : undefined;
  if (family === undefined) {
    return { ok: false, message: `invalid CIDR block "${text}": "${addressText}" is not an IPv4 or IPv6 address` };
  }
  const bits = family === 'ipv4' ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      return { ok: false, message: `invalid CIDR block "${text}": the prefix length must be 0..${bits}` };
    }
    prefix = Number(prefixText);
  }
  let bytes = family === 'ipv4' ? addressText.split('.').map(Number) : ipv6Bytes(addressText);
  let resultFamily: IpFamily = family;
  // A mapped block narrower than the mapped range is really an IPv4 block.
  if (family === 'ipv6' && prefix >= 96 && isIpv4Mapped(bytes)) {
    bytes = bytes.slice(12);
    prefix -= 96;
    resultFamily = 'ipv4';
  }
  const network = maskBytes(bytes, prefix);
  const address = resultFamily === 'ipv4' ? network.join('.') : formatIpv6(network);
  return { ok: true, block: { text, family: resultFamily, address, prefix } };
}

/**
 * True when `ip` lies in any of `blocks`. An unparseable `ip` matches nothing. The match is
 * node:net's BlockList, which compares IPv4 and IPv4-mapped IPv6 both ways.
 */
export function ipInCidrs(ip: string, blocks: readonly CidrBlock[]): boolean {
  if (blocks.length === 0 || typeof ip !== 'string') return false;
  const zone = ip.indexOf('%');
  const bare = zone >= 0 ? ip.slice(0, zone) : ip;
  const family = isIP(bare);
  if (family === 0) return false;
  return blockListOf(blocks).check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

// Block lists are frozen config arrays (or built by hand in tests); the BlockList is made on
// first use and kept here rather than as a field of the config.
const blockLists = new WeakMap<readonly CidrBlock[], BlockList>();

function blockListOf(blocks: readonly CidrBlock[]): BlockList {
  let list = blockLists.get(blocks);
  if (list === undefined) {
    list = new BlockList();
    for (const block of blocks) {
      // A hand-built block may hold an address BlockList refuses: it then matches nothing.
      try {
        list.addSubnet(block.address, block.prefix, block.family);
      } catch {
        continue;
      }
    }
    blockLists.set(blocks, list);
  }
  return list;
}

function maskBytes(bytes: readonly number[], prefix: number): number[] {
  return bytes.map((byte, i) => {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    return byte & ((0xff << (8 - bitsHere)) & 0xff);
  });
}

function isIpv4Mapped(bytes: readonly number[]): boolean {
  return bytes.length === 16 && IPV4_MAPPED_PREFIX.every((b, i) => bytes[i] === b);
}

/** Expands a valid (node:net-checked) IPv6 text to 16 bytes. */
function ipv6Bytes(text: string): number[] {
  let groupsText = text;
  const tail: number[] = [];
  // A dotted IPv4 tail stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    tail.push(...last.split('.').map(Number));
    groupsText = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = groupsText.includes('::') ? groupsText.split('::') : [groupsText, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...restGroups].map((g) => parseInt(g, 16));
  const bytes: number[] = [];
  for (const g of groups) bytes.push(g >> 8, g & 0xff);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** RFC 5952 text: lower case, leading zeros dropped, the longest run of 2+ zero groups as `::`. */
function formatIpv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLength < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * Whether a bind address only accepts connections from this host: 127.0.0.0/8, ::1 (also
 * IPv4-mapped) or the name `localhost`. Any other name may resolve anywhere, so it is not.
 */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const ip = parseIp(host);
  if (ip === undefined) return false;
  if (ip.family === 'ipv4') return ip.bytes[0] === 127;
  return ip.bytes.every((byte, i) => byte === (i === 15 ? 1 : 0));
}
