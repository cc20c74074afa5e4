import { ipInCidrs } from '../config/cidr';
import type { AccessRules } from '../config/types';

/** The named outcome of a route's access rules for one client. */
export type AccessDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string };

const ALLOWED: AccessDecision = { allowed: true };

/**
 * Whether `rules` admit a client: its address (the connection's peer, never a forwarded
 * header, which the client writes) is not denied and, when `allow` is set, is allowed; and,
 * when `clientCertSans` is set, its verified client certificate names one of them.
 * `sans` is undefined when the connection has no verified client certificate.
 */
export function decideAccess(rules: AccessRules, peerAddress: string, sans: readonly string[] | undefined): AccessDecision {
  if (ipInCidrs(peerAddress, rules.deny)) return { allowed: false, reason: `the address ${peerAddress} is denied on this route` };
  if (rules.allow.length > 0 && !ipInCidrs(peerAddress, rules.allow)) {
    return { allowed: false, reason: `the address ${peerAddress} is not allowed on this route` };
  }
  if (rules.clientCertSans.length > 0) {
    if (sans === undefined) return { allowed: false, reason: 'this route needs a client certificate (mTLS) and the connection has none' };
    if (!sans.some((san) => rules.clientCertSans.includes(san))) {
      return { allowed: false, reason: 'the client certificate names none of the identities this route admits' };
    }
  }
  return ALLOWED;
}
