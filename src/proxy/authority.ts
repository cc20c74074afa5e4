/**
 * The one spelling of a request's authority (Host, or `:authority` for HTTP/2). Routes match
 * its host and the app receives it, so `Internal.Example.COM.:8080` cannot escape a `host:`
 * route that the app, its DNS resolver or its virtual hosts would read as the same name.
 *
 * The rule: ASCII lower case; one trailing dot of a name removed (`example.com.` is the
 * fully qualified spelling of `example.com`); an empty port removed (`example.com:`); a port
 * with leading zeros written without them. Refused: a name that still ends with a dot
 * (`example.com..`, `.`) and a port above 65535.
 */
export interface Authority {
  /** Lower-case host without port or trailing dot: what `match.host` is compared with. */
  readonly host: string;
  /** `host` with its port, if any: the Host header the app receives. */
  readonly authority: string;
}

const DOT = 0x2e;
const ZERO = 0x30;
const MAX_PORT = 65535;

/** The normal form of a Host value already checked against RFC 3986's grammar; undefined when it names no valid host. */
export function normalizeAuthority(raw: string): Authority | undefined {
  const lower = raw.toLowerCase();
  // Most requests already use the normal form: then `raw` itself is the authority.
  let changed = lower !== raw;
  let host: string;
  let port: string;
  if (lower.charCodeAt(0) === 0x5b /* [ */) {
    const end = lower.indexOf(']');
    host = lower.slice(0, end + 1);
    port = lower.slice(end + 2);
    if (end + 2 === lower.length) changed = true;
  } else {
    const colon = lower.indexOf(':');
    host = colon === -1 ? lower : lower.slice(0, colon);
    port = colon === -1 ? '' : lower.slice(colon + 1);
    if (colon === lower.length - 1) changed = true;
    if (host.charCodeAt(host.length - 1) === DOT) {
      host = host.slice(0, -1);
      changed = true;
      if (host === '' || host.charCodeAt(host.length - 1) === DOT) return undefined;
    }
  }
  // Digits only (the grammar): a leading zero or five digits and more need a look.
  if (port.charCodeAt(0) === ZERO || port.length >= 5) {
    const number = Number(port);
    if (number > MAX_PORT) return undefined;
    const normal = String(number);
    if (normal !== port) {
      port = normal;
      changed = true;
    }
  }
  if (!changed) return { host, authority: raw };
  return { host, authority: port === '' ? host : `${host}:${port}` };
}
