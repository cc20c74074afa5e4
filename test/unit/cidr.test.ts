import t from 'tap';
import { ipInCidrs, parseCidr, parseIp } from '../../src/config/cidr';
import type { CidrBlock } from '../../src/config/types';

function block(text: string): CidrBlock {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.block;
}

t.test('parseCidr normalises blocks', async (t) => {
  t.same(block('10.0.0.0/8'), { text: '10.0.0.0/8', family: 'ipv4', address: '10.0.0.0', prefix: 8 });
  t.same(block('10.1.2.3/8'), { text: '10.1.2.3/8', family: 'ipv4', address: '10.0.0.0', prefix: 8 }, 'host bits cleared');
  t.same(block('192.168.1.7'), { text: '192.168.1.7', family: 'ipv4', address: '192.168.1.7', prefix: 32 }, 'bare address');
  t.same(block('0.0.0.0/0'), { text: '0.0.0.0/0', family: 'ipv4', address: '0.0.0.0', prefix: 0 });
  t.same(block('fd00::1/8'), { text: 'fd00::1/8', family: 'ipv6', address: 'fd00::', prefix: 8 });
  t.same(block('2001:DB8:0:0:1::/64'), { text: '2001:DB8:0:0:1::/64', family: 'ipv6', address: '2001:db8::', prefix: 64 });
  t.same(block('::1'), { text: '::1', family: 'ipv6', address: '::1', prefix: 128 });
  t.same(block('::/0'), { text: '::/0', family: 'ipv6', address: '::', prefix: 0 });
  t.same(block('::ffff:10.0.0.0/104'), { text: '::ffff:10.0.0.0/104', family: 'ipv4', address: '10.0.0.0', prefix: 8 }, 'mapped block is IPv4');
  t.same(block('::ffff:0:0/96'), { text: '::ffff:0:0/96', family: 'ipv4', address: '0.0.0.0', prefix: 0 });
});

t.test('parseCidr rejects bad blocks with a reason', async (t) => {
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0/8', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', 'fe80::1%eth0/64', 'localhost', '', '1.2.3.4/08x']) {
    const parsed = parseCidr(bad);
    t.equal(parsed.ok, false, bad);
    if (!parsed.ok) t.match(parsed.message, /invalid CIDR block/, bad);
  }
});

t.test('parseIp', async (t) => {
  t.same(parseIp('1.2.3.4'), { family: 'ipv4', bytes: [1, 2, 3, 4] });
  t.same(parseIp('::ffff:1.2.3.4'), { family: 'ipv4', bytes: [1, 2, 3, 4] }, 'IPv4-mapped, dotted');
  t.same(parseIp('::ffff:0102:0304'), { family: 'ipv4', bytes: [1, 2, 3, 4] }, 'IPv4-mapped, hex');
  t.same(parseIp('fe80::1%eth0')?.family, 'ipv6', 'zone ignored');
  t.same(parseIp('2001:db8::1')?.bytes, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.equal(parseIp('1.2.3'), undefined);
  t.equal(parseIp('nope'), undefined);
});

t.test('ipInCidrs', async (t) => {
  const blocks = ['10.0.0.0/8', '192.168.1.0/24', 'fd00::/8', '2001:db8::1'].map(block);
  const cases: [string, boolean][] = [
    ['10.1.2.3', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['192.168.1.200', true],
    ['192.168.2.1', false],
    ['::ffff:10.9.8.7', true],
    ['::ffff:11.0.0.1', false],
    ['fd12:3456::1', true],
    ['fe80::1', false],
    ['2001:db8::1', true],
    ['2001:db8::2', false],
    ['2001:0db8:0000::0001', true],
    ['not an ip', false],
    ['', false],
  ];
  for (const [ip, expected] of cases) t.equal(ipInCidrs(ip, blocks), expected, ip);
  t.equal(ipInCidrs('10.0.0.1', []), false, 'no blocks trust nobody');
});

t.test('non-octet prefixes', async (t) => {
  const blocks = [block('172.16.0.0/12'), block('2001:db8:8000::/33')];
  t.equal(ipInCidrs('172.31.255.255', blocks), true);
  t.equal(ipInCidrs('172.32.0.0', blocks), false);
  t.equal(ipInCidrs('172.15.255.255', blocks), false);
  t.equal(ipInCidrs('2001:db8:8000::1', blocks), true);
  t.equal(ipInCidrs('2001:db8:7fff::1', blocks), false);
});

t.test('IPv4-mapped blocks match plain IPv4 and the other way round', async (t) => {
  t.equal(ipInCidrs('10.0.0.1', [block('::ffff:10.0.0.0/104')]), true);
  t.equal(ipInCidrs('::ffff:127.0.0.1', [block('127.0.0.0/8')]), true);
  t.equal(ipInCidrs('::1', [block('127.0.0.0/8')]), false, 'IPv6 loopback is not IPv4 loopback');
});

t.test('hand-built blocks (as tests of other modules write them) work', async (t) => {
  const handMade: CidrBlock = { text: '127.0.0.0/8', family: 'ipv4', address: '127.0.0.0', prefix: 8 };
  t.equal(ipInCidrs('127.0.0.1', [handMade]), true);
});

t.test('matching goes through node:net BlockList: mapped forms both ways, zones, bad hand-built blocks', async (t) => {
  const v4 = [block('10.0.0.0/8')];
  t.equal(ipInCidrs('::ffff:0a01:0203', v4), true, 'a hex IPv4-mapped peer matches an IPv4 block');
  t.equal(ipInCidrs('::FFFF:10.1.2.3', v4), true, 'upper case');
  t.equal(ipInCidrs('::10.1.2.3', v4), false, 'IPv4-compatible (deprecated) is not mapped');
  const mappedByHand: CidrBlock = { text: '::ffff:10.0.0.0/104', family: 'ipv6', address: '::ffff:10.0.0.0', prefix: 104 };
  t.equal(ipInCidrs('10.9.9.9', [mappedByHand]), true, 'an IPv6 mapped block matches a plain IPv4 peer');
  t.equal(ipInCidrs('11.0.0.1', [mappedByHand]), false);
  t.equal(ipInCidrs('fe80::1%eth0', [block('fe80::/10')]), true, 'a peer zone id is ignored');
  const broken: CidrBlock = { text: 'bad', family: 'ipv4', address: 'not-an-address', prefix: 8 };
  t.equal(ipInCidrs('10.0.0.1', [broken, ...v4]), true, 'a bad block matches nothing and spoils nothing');
  t.equal(ipInCidrs('10.0.0.1', [broken]), false);
  t.equal(ipInCidrs('10.0.0.1', v4), ipInCidrs('10.0.0.1', v4), 'the same list gives the same answer (cached)');
});
