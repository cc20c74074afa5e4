/**
 * Real TLS clients for tests that go through the sidecar: curl, node:https, node:http2,
 * and a process logger whose lines a test can wait for.
 */

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type tls from 'node:tls';
import pino from 'pino';
import type { Logger } from '../../src/telemetry/logger';
import type { CommandResult } from './certs';

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface CapturedLog {
  readonly logger: Logger;
  readonly lines: LogLine[];
  /**
   * Resolves with the first matching line, among those logged from index `from` on (default:
   * all, including the ones already there) or to come; rejects after timeoutMs.
   */
  waitFor(match: (line: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
}

/** A pino logger at debug level that keeps every line in memory. */
export function captureLogger(): CapturedLog {
  const lines: LogLine[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  const logger = pino(
    { level: 'debug' },
    {
      write(text: string): void {
        const line = JSON.parse(text) as LogLine;
        lines.push(line);
        for (const waiter of waiters) waiter(line);
      },
    },
  );
  return {
    logger,
    lines,
    waitFor(match, timeoutMs = 10_000, from = 0) {
      const found = lines.slice(from).find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching log line within ${timeoutMs}ms; lines: ${JSON.stringify(lines.map((l) => l.msg))}`));
        }, timeoutMs);
        const waiter = (line: LogLine): void => {
          if (!match(line)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(line);
        };
        waiters.add(waiter);
      });
    },
  };
}

/** Runs the real curl binary; resolves with its exit code (never rejects on a non-zero one). */
export function runCurl(args: readonly string[], timeoutMs = 15_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('curl', ['--silent', '--show-error', ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** Whether the installed curl was built with HTTP/2 (nghttp2). */
export async function curlSupportsHttp2(): Promise<boolean> {
  const version = await runCurl(['--version']);
  return version.code === 0 && /^Features:.*\bHTTP2\b/m.test(version.stdout);
}

/** curl arguments that reach a listener bound on 127.0.0.1 by the name `localhost`. */
export function curlLocalhost(port: number): string[] {
  return ['--resolve', `localhost:${port}:127.0.0.1`];
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The negotiated ALPN protocol. */
  readonly alpn: string | false | null;
  /** Upper-case hex serial of the certificate the server presented on this connection. */
  readonly peerSerial: string | undefined;
}

export interface HttpsRequestOptions extends https.RequestOptions {
  readonly body?: string;
}

/** One node:https request, on its own connection unless an agent is given, to 127.0.0.1 unless `host` says otherwise. */
export function httpsRequest(opts: HttpsRequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const { body, ...options } = opts;
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', path: '/', agent: false, ...options }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      const alpn = socket.alpnProtocol;
      const peerSerial = socket.getPeerX509Certificate()?.serialNumber.toUpperCase();
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, alpn, peerSerial }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface H2Reply {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: string;
}

/** Connects an HTTP/2 session to 127.0.0.1:port as `localhost`, trusting `ca`. */
export async function connectH2(port: number, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://localhost:${port}`, {
    host: '127.0.0.1',
    servername: 'localhost',
    ...options,
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    session.once('error', onError);
    session.once('connect', () => {
      session.off('error', onError);
      resolve();
    });
  });
  return session;
}

/** One request on an HTTP/2 session; `body` is sent as DATA frames (no content-length unless given). */
export async function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string | Buffer,
): Promise<H2Reply> {
  const stream = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => (text += chunk));
  const [responseHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader];
  await once(stream, 'end');
  return { status: Number(responseHeaders[':status']), headers: responseHeaders, body: text };
}
