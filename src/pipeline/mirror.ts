import type { MirrorPolicy } from '../config/types';
import { MIRROR_MAX_IN_FLIGHT_REQUESTS } from '../config/defaults';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/** What became of one shadow copy (the `outcome` label of sidecar_mirror_requests_total). */
export type MirrorOutcome = 'ok' | '5xx' | 'failed' | 'body_too_large' | 'body_incomplete' | 'overflow' | 'no_healthy_upstream';

export const SHADOW_HEADER = 'x-sidecar-shadow';

/**
 * `routes[].mirror` (only in the HTTP chain of a route that sets it): a copy of a share of the
 * route's requests goes to the shadow cluster, fire-and-forget. Nothing of the copy reaches
 * the client's exchange: no event goes up or down the chain, its answer is read and dropped,
 * and its failures are only counted. A request without a body is copied at once; one with a
 * body once the body has passed to the app (exchange.ts puts a copying stream in its way, see
 * proxy/body-copy.ts). Memory is bounded: bodies up to maxBodyBytes, and at most
 * MIRROR_MAX_IN_FLIGHT_REQUESTS copies of the route in flight (a hanging shadow cluster then
 * gets no more until its copies time out at the route timeout).
 */
export class MirrorInterceptor extends Interceptor {
  private inFlight = 0;

  constructor(private readonly policy: MirrorPolicy) {
    super();
  }

  dispatch(x: Exchange): void {
    if (x.mirrorCluster !== undefined && Math.random() * 100 < this.policy.percent) {
      if (!x.hasBody) this.send(x, null);
      else if (Number(x.req.headers['content-length'] ?? 0) > this.policy.maxBodyBytes) this.count(x, 'body_too_large');
      else x.mirrorBodyPending = true;
    }
    this.next!.dispatch(x);
  }

  /** The request body passed through whole (or crossed the cap: undefined). */
  bodyCopied(x: Exchange, body: Buffer | undefined): void {
    if (!x.mirrorBodyPending) return;
    x.mirrorBodyPending = false;
    if (body === undefined) this.count(x, 'body_too_large');
    else this.send(x, body);
  }

  override onEnd(x: Exchange): void {
    this.next!.onEnd(x);
    // The app never read the whole body (refused, failed, or the client left mid-body).
    if (x.mirrorBodyPending) {
      x.mirrorBodyPending = false;
      this.count(x, 'body_incomplete');
    }
  }

  private send(x: Exchange, body: Buffer | null): void {
    const cluster = x.mirrorCluster!;
    if (this.inFlight >= MIRROR_MAX_IN_FLIGHT_REQUESTS) {
      this.count(x, 'overflow');
      return;
    }
    const endpoint = cluster.pick();
    if (endpoint === undefined) {
      this.count(x, 'no_healthy_upstream');
      return;
    }
    const headers = x.upstreamHeaders.slice();
    headers.push(SHADOW_HEADER, 'true');
    this.inFlight++;
    // Held like a request of the cluster, so that a reload retiring it waits for the copy.
    cluster.acquire();
    const timeoutMs = x.route.timeoutMs;
    endpoint.pool
      .request({ path: x.upstreamPath, method: (x.req.method ?? 'GET') as 'GET', headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then(
        async (res): Promise<MirrorOutcome> => {
          await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
          return res.statusCode >= 500 ? '5xx' : 'ok';
        },
        (): MirrorOutcome => 'failed',
      )
      .catch((): MirrorOutcome => 'failed')
      .then((outcome) => {
        this.inFlight--;
        cluster.release();
        this.count(x, outcome);
      });
  }

  private count(x: Exchange, outcome: MirrorOutcome): void {
    x.services.metrics.mirrorRequests.labels(x.route.name, this.policy.cluster, outcome).inc();
  }
}
