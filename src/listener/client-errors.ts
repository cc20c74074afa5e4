import type http from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { ERROR_MESSAGES, ERROR_STATUS, errorBody, type ErrorCode } from '../core/errors';

/** Time a refused client gets to take the error answer before its socket is destroyed anyway. */
const ERROR_ANSWER_FLUSH_TIMEOUT_MS = 2_000;

const CLIENT_ERRORS: Readonly<Record<string, { reason: string; code: ErrorCode }>> = {
  HPE_HEADER_OVERFLOW: { reason: 'Request Header Fields Too Large', code: 'HEADERS_TOO_LARGE' },
  ERR_HTTP_REQUEST_TIMEOUT: { reason: 'Request Timeout', code: 'REQUEST_TIMEOUT' },
};

/**
 * What happens to a connection whose bytes Node's parser refuses (smuggling attempts, bad
 * chunk sizes, oversized headers) or whose request did not arrive in time. The connection is
 * never reused, and an answer is only written where it cannot be mistaken for the answer to
 * another request:
 * - no response is open on the connection: the error answer, then the socket is destroyed
 *   (not half-closed: a peer that never closes its side must not keep the descriptor);
 * - every open response belongs to a request that arrived whole (the bad bytes are a later,
 *   pipelined request): those responses finish first, then the error answer follows;
 * - the request being received is itself the bad one and its response has not started:
 *   the error answer now; its exchange sees the connection close and abandons the upstream;
 * - otherwise part of a response is on the wire: the connection is cut.
 */
export class ClientErrorGuard {
  private readonly openResponses = new WeakMap<Socket, Set<http.ServerResponse>>();
  private readonly afterOpenResponses = new WeakMap<Socket, () => void>();

  /** `server` is an http.Server, or the HTTP/2 server of a TLS listener (its HTTP/1.1 connections). */
  attach(server: NodeJS.EventEmitter): void {
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.onClientError(error, socket));
  }

  /** Called by the listener for each HTTP/1 request, before its handler. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    let open = this.openResponses.get(socket);
    if (open === undefined) {
      open = new Set();
      this.openResponses.set(socket, open);
    }
    open.add(res);
    // on(), not once(): 'close' is emitted once, and once() wraps every listener it adds.
    // (The socket is captured: Node may have cleared res.req.socket by the time of 'close'.)
    const responses = open;
    res.on('close', () => {
      responses.delete(res);
      if (responses.size === 0) this.afterOpenResponses.get(socket)?.();
    });
  }

  private onClientError(error: NodeJS.ErrnoException, socket: Socket): void {
    // Already waiting for the open responses: the connection closes after them anyway.
    if (this.afterOpenResponses.has(socket)) return;
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const open = [...(this.openResponses.get(socket) ?? [])];
    if (open.length === 0) {
      answerAndClose(error, socket);
    } else if (open.every((res) => res.req.complete)) {
      socket.pause();
      this.afterOpenResponses.set(socket, () => {
        if (socket.writable) answerAndClose(error, socket);
        else socket.destroy();
      });
    } else if (open.length === 1 && !open[0].headersSent) {
      answerAndClose(error, socket);
    } else {
      socket.destroy();
    }
  }
}

function answerAndClose(error: NodeJS.ErrnoException, socket: Socket): void {
  const known = CLIENT_ERRORS[error.code ?? ''];
  const code = known?.code ?? 'BAD_REQUEST';
  const status = ERROR_STATUS[code];
  const reason = known?.reason ?? 'Bad Request';
  const requestId = randomUUID();
  const body = errorBody(code, `${ERROR_MESSAGES[code]} (${error.code ?? error.message})`, requestId);
  socket.setTimeout(ERROR_ANSWER_FLUSH_TIMEOUT_MS, () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-sidecar-error: ${code}\r\n` +
      `x-request-id: ${requestId}\r\n` +
      'connection: close\r\n\r\n' +
      body,
    () => socket.destroy(),
  );
}
