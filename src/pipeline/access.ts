import type { AccessRules } from '../config/types';
import { decideAccess } from '../policy/access';
import { normalizePeerAddress } from '../core/peer-address';
import { connectionOf } from '../proxy/http2-request';
import { clientCertificateSans } from '../proxy/peer-certificate';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/** `routes[].access` (only in the HTTP chain of a route that sets it; an upgrade is checked when it is routed, listener/upgrade-handler.ts): a refused client gets 403 ACCESS_DENIED. */
export class AccessInterceptor extends Interceptor {
  constructor(private readonly rules: AccessRules) {
    super();
  }

  dispatch(x: Exchange): void {
    const socket = connectionOf(x.req);
    const decision = decideAccess(this.rules, normalizePeerAddress(socket.remoteAddress), clientCertificateSans(socket));
    if (decision.allowed) this.next!.dispatch(x);
    else this.up!.onDenied(x, 'ACCESS_DENIED', decision.reason, NO_HEADERS);
  }
}

const NO_HEADERS: readonly string[] = [];
