import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/**
 * The subjectAltName values (URI, DNS, email, IP) of the connection's verified client
 * certificate, read once per connection; undefined without one (plain HTTP, no certificate,
 * or one that did not verify).
 */
export function clientCertificateSans(socket: Socket): readonly string[] | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  if (sansBySocket.has(socket)) return sansBySocket.get(socket);
  const certificate = socket.getPeerX509Certificate();
  const sans = certificate?.subjectAltName === undefined ? undefined : parseSubjectAltName(certificate.subjectAltName);
  sansBySocket.set(socket, sans);
  return sans;
}

const sansBySocket = new WeakMap<Socket, readonly string[] | undefined>();

/**
 * Node's text form: `DNS:a.example, URI:spiffe://x/y, IP Address:10.0.0.1, email:a@b`; a value
 * holding a comma, quote or control character is written as a JSON string (so a SAN cannot
 * forge a second entry). Returns the values without their type.
 */
export function parseSubjectAltName(text: string): string[] {
  const values: string[] = [];
  const entry = /([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let match = entry.exec(text); match !== null && match[0] !== ''; match = entry.exec(text)) {
    const raw = match[2];
    if (!raw.startsWith('"')) {
      values.push(raw);
      continue;
    }
    try {
      values.push(JSON.parse(raw) as string);
    } catch {
      continue;
    }
  }
  return values;
}
