import type { ChainContext } from './context';
import { Interceptor } from './interceptor';

/**
 * `routes[].hostRewrite` (only in the chain of a route that sets it): the Host header each
 * attempt sends. `auto` is the endpoint's host, set per attempt since a retry may go to
 * another endpoint; a name is the same for every attempt. It runs on onAttemptStart, after
 * the terminal picked the endpoint and before it dispatches the headers.
 */
export class HostRewriteInterceptor extends Interceptor {
  constructor(private readonly rewrite: string) {
    super();
  }

  dispatch(x: ChainContext): void {
    this.next!.dispatch(x);
  }

  override onAttemptStart(x: ChainContext): void {
    const host = this.rewrite === 'auto' ? x.endpoint?.hostHeader : this.rewrite;
    if (host !== undefined) setHost(x.upstreamHeaders, host);
    this.up!.onAttemptStart(x);
  }
}

/** Replaces the value of `host` in a flat [name, value, ...] list, or adds it. */
function setHost(headers: string[], host: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'host') {
      headers[i + 1] = host;
      return;
    }
  }
  headers.push('host', host);
}
