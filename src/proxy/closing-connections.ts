import type { IncomingMessage } from 'node:http';

/**
 * HTTP/1 connections the sidecar has answered with `connection: close` because of the
 * request itself (bad framing, body too large). Node may already have parsed requests the
 * client pipelined behind it; those are never served: where they start depends on the
 * framing the refusal was about, so serving them would be serving a smuggled request.
 * (HTTP/2 frames each stream on its own: a refused stream leaves the others alone.)
 */
const closing = new WeakSet<object>();

export function refuseLaterRequests(req: IncomingMessage): void {
  if (req.httpVersionMajor === 1) closing.add(req.socket);
}

/** Whether `req` arrived on a connection that already refused an earlier request. */
export function arrivedAfterRefusal(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && closing.has(req.socket);
}
