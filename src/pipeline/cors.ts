import type { CorsPolicy } from '../config/types';
import type { ErrorCode } from '../core/errors';
import { allowedOrigin, isCorsResponseHeader, isPreflight, preflightHeaders, responseHeaders, VARY_ORIGIN } from '../policy/cors';
import type { AttemptControl } from './context';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/**
 * `routes[].cors` (only in the chain of a route that sets it). Preflights are answered here
 * with 204 and never reach the steps below (auth included: browsers send no credentials on a
 * preflight). Other responses, the app's and the sidecar's refusals from below alike, get the
 * route's Access-Control-* headers in place of the app's, and Vary: Origin.
 */
export class CorsInterceptor extends Interceptor {
  constructor(private readonly policy: CorsPolicy) {
    super();
  }

  dispatch(x: Exchange): void {
    const origin = x.req.headers.origin;
    const allowOrigin = allowedOrigin(this.policy, origin);
    if (isPreflight(x.req.method, origin, headerText(x.req.headers['access-control-request-method']))) {
      this.up!.onAnswered(x, 204, preflightHeaders(this.policy, allowOrigin));
      return;
    }
    x.corsHeaders = allowOrigin === undefined ? VARY_ORIGIN : [...VARY_ORIGIN, ...responseHeaders(this.policy, allowOrigin)];
    this.next!.dispatch(x);
  }

  override onResponse(x: Exchange, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return this.up!.onResponse(x, handler, statusCode, withCorsHeaders(rawHeaders, x.corsHeaders), resume, statusText);
  }

  override onAnswered(x: Exchange, status: number, headers: readonly string[], body?: Buffer): void {
    this.up!.onAnswered(x, status, [...headers, ...x.corsHeaders], body);
  }

  override onDenied(x: Exchange, code: ErrorCode, message: string, headers: readonly string[]): void {
    // A page can read why it was refused (a 401 it should answer by logging in).
    this.up!.onDenied(x, code, message, [...headers, ...x.corsHeaders]);
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function withCorsHeaders(raw: Buffer[], cors: readonly string[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!isCorsResponseHeader(raw[i].toString('latin1').toLowerCase())) out.push(raw[i], raw[i + 1]);
  }
  for (const text of cors) out.push(Buffer.from(text, 'latin1'));
  return out;
}
