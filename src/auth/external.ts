import { request } from 'undici';
import type { ExternalAuth } from '../config/types';
import type { Logger } from '../telemetry/logger';
import { PASS_WITHOUT_HEADERS, type Authenticator, type AuthOutcome, type AuthRequest } from './outcome';

/** Largest refusal body relayed from the auth service; a longer one is cut. */
const MAX_RELAYED_BODY_BYTES = 64 * 1024;
/** Decisions remembered at most (cacheFor > 0); the oldest go first. */
const MAX_CACHED_DECISIONS = 10_000;
/** Headers of the service's answer that describe its own message, not the client's. */
const NOT_RELAYED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/**
 * `routes[].auth.external` (Traefik forwardAuth / Envoy ext_authz over HTTP): the service is
 * asked with the request's method, its path (after the URL's path and pathPrefix) and the
 * chosen headers, without the body. A 2xx lets the request through with the chosen headers
 * of the answer; any other answer goes back to the client as the service sent it. No answer
 * in time (or no connection) is 503 AUTH_UNAVAILABLE, or a pass with `failureMode: allow`.
 */
export class ExternalAuthenticator implements Authenticator {
  readonly strip: ReadonlySet<string>;
  private readonly base: URL;
  private readonly cache = new Map<string, { readonly until: number; readonly outcome: AuthOutcome }>();

  constructor(private readonly policy: ExternalAuth) {
    this.strip = new Set(policy.responseHeaders);
    this.base = new URL(policy.url);
  }

  async check({ req, path, requestId }: AuthRequest, logger: Logger): Promise<AuthOutcome> {
    const headers: Record<string, string> = {};
    for (const name of this.policy.requestHeaders) {
      const value = req.headers[name];
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const key = this.policy.cacheForMs > 0 ? `${req.method ?? ''} ${path}\u0000${JSON.stringify(headers)}` : undefined;
    if (key !== undefined) {
      const hit = this.cache.get(key);
      if (hit !== undefined && hit.until > performance.now()) return hit.outcome;
      this.cache.delete(key);
    }
    headers['x-request-id'] = requestId;
    const outcome = await this.ask(req.method ?? 'GET', path, headers, logger);
    if (key !== undefined && outcome !== undefined) {
      if (this.cache.size >= MAX_CACHED_DECISIONS) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, { until: performance.now() + this.policy.cacheForMs, outcome });
    }
    return outcome ?? this.unavailable();
  }

  /** The service's decision, or undefined when it gave none (timeout, connection failure, a broken answer). */
  private async ask(method: string, path: string, headers: Record<string, string>, logger: Logger): Promise<AuthOutcome | undefined> {
    const url = new URL(this.base.href);
    url.pathname = url.pathname.replace(/\/$/, '') + this.policy.pathPrefix + path.split('?')[0];
    const query = path.indexOf('?');
    url.search = query >= 0 ? path.slice(query) : '';
    try {
      const res = await request(url, {
        method: method as never,
        headers,
        headersTimeout: this.policy.timeoutMs,
        bodyTimeout: this.policy.timeoutMs,
        signal: AbortSignal.timeout(this.policy.timeoutMs),
      });
      if (res.statusCode >= 200 && res.statusCode < 300) {
        await res.body.dump();
        const set: [string, string][] = [];
        for (const name of this.policy.responseHeaders) {
          const value = res.headers[name];
          if (value !== undefined) set.push([name, Array.isArray(value) ? value.join(', ') : value]);
        }
        return set.length === 0 ? PASS_WITHOUT_HEADERS : { kind: 'pass', set };
      }
      const body = await readAtMost(res.body, MAX_RELAYED_BODY_BYTES);
      const relayed: string[] = [];
      // Headers the service's Connection names are hop-by-hop too (RFC 9110 §7.6.1).
      const connection = res.headers.connection;
      const named = new Set((Array.isArray(connection) ? connection.join(',') : (connection ?? '')).split(',').map((token) => token.trim().toLowerCase()));
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || NOT_RELAYED.has(name) || named.has(name)) continue;
        for (const one of Array.isArray(value) ? value : [value]) relayed.push(name, one);
      }
      return { kind: 'relay', status: res.statusCode, headers: relayed, body };
    } catch (error) {
      logger.warn({ url: this.base.href, err: (error as Error).message }, 'the external authorization service did not answer');
      return undefined;
    }
  }

  private unavailable(): AuthOutcome {
    if (this.policy.failureMode === 'allow') return PASS_WITHOUT_HEADERS;
    return { kind: 'deny', code: 'AUTH_UNAVAILABLE', message: `the authorization service ${this.base.origin} did not answer within ${this.policy.timeoutMs}ms`, headers: [] };
  }
}

async function readAtMost(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit);
}
