import type { FaultPolicy } from '../config/types';
import { SidecarError } from '../core/errors';
import { decideFault, headerPercent } from '../policy/fault';
import { classifyUpstreamError } from '../upstream/error-map';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

const DEADLINE_DURING_DELAY = new SidecarError('UPSTREAM_TIMEOUT', 'the route timeout came during an injected delay (fault.delay)');

/**
 * `routes[].fault` (only in the HTTP chain of a route that sets it): delays and/or aborts a share of
 * requests before they reach the breaker (an injected abort says nothing about the app). The
 * delay runs under the route's deadline; an abort answers the configured status with
 * x-sidecar-error: FAULT_ABORT. Either marks the exchange FI.
 */
export class FaultInterceptor extends Interceptor {
  constructor(private readonly policy: FaultPolicy) {
    super();
  }

  dispatch(x: Exchange): void {
    const policy = this.policy;
    let eligible = true;
    let override: number | undefined;
    if (policy.header !== undefined) {
      const value = x.req.headers[policy.header];
      eligible = value !== undefined;
      override = headerPercent(value);
    }
    const decision = decideFault(policy, eligible, override, Math.random);
    if (decision === 'none') {
      this.next!.dispatch(x);
      return;
    }
    x.faultInjected = true;
    if (decision === 'abort') {
      this.abort(x);
      return;
    }
    x.faultAbortAfterDelay = decision === 'delay-then-abort';
    x.faultTimer = setTimeout(delayOver, policy.delay!.durationMs, x);
  }

  /** @internal the injected delay is over. */
  delayOver(x: Exchange): void {
    x.faultTimer = undefined;
    if (x.abandoned || x.finished) return;
    if (x.faultAbortAfterDelay) this.abort(x);
    else this.next!.dispatch(x);
  }

  private abort(x: Exchange): void {
    const status = this.policy.abort!.status;
    x.faultAbortStatus = status;
    this.up!.onRefused(x, 'FAULT_ABORT', `fault injected by route ${x.route.name}: abort with ${status}`);
  }

  override onDeadline(x: Exchange): void {
    if (x.faultTimer === undefined) {
      this.next!.onDeadline(x);
      return;
    }
    clearDelay(x);
    x.abandoned = true;
    this.up!.onFailure(x, classifyUpstreamError(DEADLINE_DURING_DELAY));
  }

  override onEnd(x: Exchange): void {
    this.next!.onEnd(x);
    clearDelay(x);
  }
}

function clearDelay(x: Exchange): void {
  if (x.faultTimer !== undefined) {
    clearTimeout(x.faultTimer);
    x.faultTimer = undefined;
  }
}

// The timer takes the exchange as its argument: no closure is allocated per request.
function delayOver(x: Exchange): void {
  x.chain.fault!.delayOver(x);
}
