/** The pure access decision and the reading of a certificate's subjectAltName. */
import t from 'tap';
import { parseCidr } from '../../src/config/cidr';
import type { AccessRules, CidrBlock } from '../../src/config/types';
import { decideAccess } from '../../src/policy/access';
import { parseSubjectAltName } from '../../src/proxy/peer-certificate';

function blocks(...texts: string[]): CidrBlock[] {
  return texts.map((text) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.block;
  });
}

t.test('decideAccess', async (t) => {
  const rules: AccessRules = { allow: blocks('10.0.0.0/8', 'fd00::/8'), deny: blocks('10.9.0.0/16'), clientCertSans: [] };
  t.ok(decideAccess(rules, '10.1.2.3', undefined).allowed, 'allowed IPv4');
  t.ok(decideAccess(rules, '::ffff:10.1.2.3', undefined).allowed, 'IPv4-mapped IPv6 is the IPv4 address');
  t.ok(decideAccess(rules, 'fd00::1', undefined).allowed, 'allowed IPv6');
  t.notOk(decideAccess(rules, '10.9.1.1', undefined).allowed, 'deny inside allow');
  t.notOk(decideAccess(rules, '192.168.1.1', undefined).allowed, 'outside allow');
  t.notOk(decideAccess(rules, '', undefined).allowed, 'no address is not allowed');
  t.notOk(decideAccess(rules, 'not-an-ip', undefined).allowed, 'garbage is not allowed');
  const sans: AccessRules = { allow: [], deny: [], clientCertSans: ['spiffe://td/ns/billing/sa/billing'] };
  t.ok(decideAccess(sans, '1.2.3.4', ['DNS-ish', 'spiffe://td/ns/billing/sa/billing']).allowed);
  t.notOk(decideAccess(sans, '1.2.3.4', ['spiffe://td/ns/billing/sa/billing2']).allowed, 'no prefix match');
  t.notOk(decideAccess(sans, '1.2.3.4', []).allowed);
  t.notOk(decideAccess(sans, '1.2.3.4', undefined).allowed);
});

t.test('parseSubjectAltName', async (t) => {
  t.same(parseSubjectAltName('DNS:localhost, URI:spiffe://td/ns/a/sa/b, IP Address:127.0.0.1'), ['localhost', 'spiffe://td/ns/a/sa/b', '127.0.0.1']);
  // Node quotes a value holding ", " so that it cannot read as two entries.
  t.same(parseSubjectAltName('URI:"spiffe://td/x, URI:spiffe://td/ns/billing/sa/billing"'), ['spiffe://td/x, URI:spiffe://td/ns/billing/sa/billing']);
  t.same(parseSubjectAltName(''), []);
});
