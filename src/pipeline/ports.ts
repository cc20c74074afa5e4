import type { ErrorCode } from '../core/errors';
import type { AttemptFailure } from '../upstream/error-map';
import type { AttemptControl, ChainContext } from './context';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

/**
 * The chain's first step: it stands for the client's side of whichever exchange passes, and
 * hands every event that reaches the top of the policies to that exchange's own head (observe
 * for HTTP, the tunnel's client side for a WebSocket upgrade). One call more per event, and
 * one compiled chain of policies per route for both kinds.
 */
export class HeadPort extends Interceptor {
  dispatch(x: ChainContext): void {
    x.ends.head.dispatch(x);
  }

  override onAttemptStart(x: ChainContext): void {
    x.ends.head.onAttemptStart(x);
  }

  override onAttemptEnd(x: ChainContext): void {
    x.ends.head.onAttemptEnd(x);
  }

  override onResponse(x: ChainContext, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    return x.ends.head.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
  }

  override onFailure(x: ChainContext, failure: AttemptFailure): void {
    x.ends.head.onFailure(x, failure);
  }

  override onRefused(x: ChainContext, code: ErrorCode, message: string): void {
    x.ends.head.onRefused(x, code, message);
  }

  override onClientTimeout(x: ChainContext, message: string): void {
    x.ends.head.onClientTimeout(x, message);
  }

  override onDenied(x: Exchange, code: ErrorCode, message: string, headers: readonly string[]): void {
    x.ends.head.onDenied(x, code, message, headers);
  }

  override onAnswered(x: Exchange, status: number, headers: readonly string[], body?: Buffer): void {
    x.ends.head.onAnswered(x, status, headers, body);
  }
}

/** The chain's last step: hands what goes down to the exchange's own terminal (pool or tunnel). */
export class TerminalPort extends Interceptor {
  dispatch(x: ChainContext): void {
    x.ends.terminal.dispatch(x);
  }

  override onPerTryTimeout(x: ChainContext): boolean {
    return x.ends.terminal.onPerTryTimeout(x);
  }

  override onDeadline(x: ChainContext): void {
    x.ends.terminal.onDeadline(x);
  }

  override onEnd(x: ChainContext): void {
    x.ends.terminal.onEnd(x);
  }
}
