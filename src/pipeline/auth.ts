import { insertHeader, removeHeaders } from '../auth/forwarded-headers';
import type { Authenticator, AuthOutcome } from '../auth/outcome';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/**
 * `routes[].auth` (only in the HTTP chain of a route that sets it; an upgrade is authenticated with the same authenticator when it is routed, listener/upgrade-handler.ts): the request goes on only once
 * its authenticator (auth/) let it through. The headers the authenticator owns are removed
 * from what the app receives before anything else, whatever the outcome, so a client can
 * never hand the app a claim or an auth answer of its own.
 */
export class AuthInterceptor extends Interceptor {
  constructor(private readonly authenticator: Authenticator) {
    super();
  }

  dispatch(x: Exchange): void {
    removeHeaders(x.upstreamHeaders, this.authenticator.strip);
    this.authenticator.check({ req: x.req, path: x.upstreamPath, requestId: x.requestId }, x.services.logger).then(
      (outcome) => this.settle(x, outcome),
      (error: unknown) => {
        x.services.logger.error({ err: error, route: x.route.name }, 'authentication failed unexpectedly');
        this.settle(x, { kind: 'deny', code: 'AUTH_UNAVAILABLE', message: 'the request could not be authenticated', headers: [] });
      },
    );
  }

  private settle(x: Exchange, outcome: AuthOutcome): void {
    // The client went away while it was checked: nothing more to do.
    if (x.finished) return;
    switch (outcome.kind) {
      case 'pass':
        for (const [name, value] of outcome.set) insertHeader(x.upstreamHeaders, name, value);
        this.next!.dispatch(x);
        return;
      case 'deny':
        this.up!.onDenied(x, outcome.code, outcome.message, outcome.headers);
        return;
      case 'relay':
        this.up!.onAnswered(x, outcome.status, outcome.headers, outcome.body);
        return;
    }
  }
}
