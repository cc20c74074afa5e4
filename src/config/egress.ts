import { isIP } from 'node:net';

/**
 * One entry of `listeners[].forwardProxy.allow`: a host name, `*.domain` (every name under
 * the domain, not the domain itself) or an IP address, with an optional `:port` (without one,
 * any port). Names compare case-insensitively, without a trailing dot.
 */
export interface EgressRule {
  /** As written: the label of the rule's metrics. */
  readonly text: string;
  /** Lower-case; for a wildcard, the domain after `*.`; for IPv6, without brackets. */
  readonly host: string;
  readonly wildcard: boolean;
  /** undefined: any port. */
  readonly port: number | undefined;
}

export interface Destination {
  /** Lower-case, without brackets or a trailing dot. */
  readonly host: string;
  readonly port: number;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function isHostName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}

/** `host[:port]`, `[v6][:port]`; the port, when present, 1..65535. */
function splitHostPort(text: string): { host: string; portText: string | undefined } | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return isIP(bracketed[1]) === 6 ? { host: bracketed[1], portText: bracketed[2] } : undefined;
  const colon = text.lastIndexOf(':');
  if (colon === -1) return { host: text, portText: undefined };
  const host = text.slice(0, colon);
  // An IPv6 address is written in brackets (RFC 3986 §3.2.2).
  if (host.includes(':')) return undefined;
  return { host, portText: text.slice(colon + 1) };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The rule, or the reason the text is not one. */
export function parseEgressRule(text: string): EgressRule | string {
  const bad = (why: string): string => `invalid forwardProxy.allow entry ${JSON.stringify(text)}: ${why}`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return bad('write host[:port] or *.domain[:port], without a scheme');
  const parts = splitHostPort(text.trim().toLowerCase());
  if (parts === undefined) return bad('not host[:port], *.domain[:port] or [IPv6][:port]');
  let port: number | undefined;
  if (parts.portText !== undefined) {
    port = parsePort(parts.portText);
    if (port === undefined) return bad('the port must be 1..65535');
  }
  const wildcard = parts.host.startsWith('*.');
  const host = (wildcard ? parts.host.slice(2) : parts.host).replace(/\.$/, '');
  if (host === '*' || parts.host === '*') return bad('"*" alone would allow every destination: name the hosts or domains the app may reach');
  if (isIP(host) === 0 && !isHostName(host)) return bad(`"${host}" is not a host name or IP address`);
  if (wildcard && isIP(host) !== 0) return bad('a wildcard applies to domain names, not IP addresses');
  return { text, host, wildcard, port };
}

/** The CONNECT target `host:port` (authority-form, RFC 9112 §3.2.3), or undefined when malformed. */
export function parseConnectTarget(target: string): Destination | undefined {
  const parts = splitHostPort(target.toLowerCase());
  if (parts === undefined || parts.portText === undefined) return undefined;
  const port = parsePort(parts.portText);
  const host = parts.host.replace(/\.$/, '');
  if (port === undefined) return undefined;
  if (isIP(host) === 0 && !isHostName(host)) return undefined;
  return { host, port };
}

/** The first rule that allows the destination, or undefined: the tunnel is refused. */
export function allowedBy(rules: readonly EgressRule[], destination: Destination): EgressRule | undefined {
  for (const rule of rules) {
    if (rule.port !== undefined && rule.port !== destination.port) continue;
    if (rule.wildcard ? destination.host.endsWith(`.${rule.host}`) : destination.host === rule.host) return rule;
  }
  return undefined;
}

/** `host:port` as a CONNECT target names it (IPv6 in brackets). */
export function formatDestination(destination: Destination): string {
  return isIP(destination.host) === 6 ? `[${destination.host}]:${destination.port}` : `${destination.host}:${destination.port}`;
}
