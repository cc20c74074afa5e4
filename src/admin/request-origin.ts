import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { hostname } from 'node:os';

/**
 * Which requests the admin API answers by the Host and Origin they carry. The admin
 * listener is on loopback (or behind a token), but a browser on the same machine can still
 * be made to reach it:
 * - DNS rebinding: a page on attacker.example re-points its own name to 127.0.0.1 and, being
 *   same-origin with itself, reads /config or POSTs /reload. Its requests carry
 *   `Host: attacker.example`. So the Host must be an IP address, `localhost` (or a
 *   `*.localhost` name, which browsers resolve to loopback themselves), the admin's
 *   configured host name or this machine's name. Any IP literal is accepted: rebinding needs
 *   a name the attacker controls, and kubelet probes, port-forwards and `docker -p` all send
 *   an IP (often one that is not among this container's own addresses). The port is not
 *   compared, for the same reason (a port-forward changes it).
 * - Cross-site requests (a form POST to http://127.0.0.1:9901/reload from any page): the
 *   browser says where they come from in `Origin` and `Sec-Fetch-Site`. Only the admin's own
 *   origin, or a request the user typed (`Sec-Fetch-Site: none`), is answered.
 * Tools (curl, Prometheus, kubelet) send neither header, and an IP or localhost Host.
 */
export function adminRequestRefusal(headers: IncomingHttpHeaders, adminHost: string): string | undefined {
  const host = headers.host;
  if (host !== undefined && !hostAllowed(host, adminHost)) {
    return `the admin API answers requests addressed to an IP address, localhost or its own host name, not Host: ${host} (DNS rebinding protection)`;
  }
  const origin = headers.origin;
  if (origin !== undefined && (host === undefined || origin.toLowerCase() !== `http://${host.toLowerCase()}`)) {
    return `the admin API answers only its own origin, not Origin: ${origin} (cross-site request protection)`;
  }
  const fetchSite = headers['sec-fetch-site'];
  if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
    return `the admin API answers only its own origin, not a request a page sent from another one (Sec-Fetch-Site: ${fetchSite})`;
  }
  return undefined;
}

/** `host` is the Host header: `name`, `name:port`, `a.b.c.d[:port]` or `[v6][:port]`. */
export function hostAllowed(host: string, adminHost: string): boolean {
  const name = hostWithoutPort(host).toLowerCase();
  if (name === '') return false;
  if (isIP(name) !== 0) return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return name === adminHost.toLowerCase() || name === hostname().toLowerCase();
}

function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    // `[v6]` or `[v6]:port`; anything else after the bracket is not a Host.
    if (end < 0 || (end + 1 < host.length && host[end + 1] !== ':')) return '';
    return host.slice(1, end);
  }
  const colon = host.indexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}
