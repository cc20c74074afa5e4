/**
 * Raw HTTP/2 frames for hostile tests: what a client library would refuse to send (a
 * content-length that disagrees with the DATA, more streams than the server allows, a
 * header list over its limit). HPACK fields are literals without indexing and without Huffman
 * coding, so any bytes can be sent.
 */

import { once } from 'node:events';
import net from 'node:net';
import { HTTP2_PREFACE } from '../../src/listener/protocol-detect';

export const FRAME_DATA = 0x0;
export const FRAME_HEADERS = 0x1;
export const FRAME_RST_STREAM = 0x3;
export const FRAME_SETTINGS = 0x4;
export const FRAME_GOAWAY = 0x7;
export const FRAME_CONTINUATION = 0x9;
export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
/** SETTINGS_MAX_FRAME_SIZE's default: no frame sent here is longer. */
const MAX_FRAME_PAYLOAD = 16_384;

export type Fields = ReadonlyArray<readonly [string, string]>;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** "Literal header field without indexing, new name", no Huffman coding. */
export function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00]), hpackInteger(n.length, 7), n, hpackInteger(v.length, 7), v]);
}

/** A header block as HEADERS and, past one frame's size, CONTINUATION frames. */
export function headerFrames(streamId: number, fields: Fields, endStream: boolean): Buffer {
  const block = Buffer.concat(fields.map(([n, v]) => literal(n, v)));
  const frames: Buffer[] = [];
  for (let offset = 0; offset === 0 || offset < block.length; offset += MAX_FRAME_PAYLOAD) {
    const piece = block.subarray(offset, offset + MAX_FRAME_PAYLOAD);
    const last = offset + MAX_FRAME_PAYLOAD >= block.length;
    const type = offset === 0 ? FRAME_HEADERS : FRAME_CONTINUATION;
    const flags = (last ? FLAG_END_HEADERS : 0) | (offset === 0 && endStream ? FLAG_END_STREAM : 0);
    frames.push(frame(type, flags, streamId, piece));
  }
  return Buffer.concat(frames);
}

export function dataFrame(streamId: number, data: Buffer | string, endStream: boolean): Buffer {
  return frame(FRAME_DATA, endStream ? FLAG_END_STREAM : 0, streamId, Buffer.from(data));
}

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  readonly closed: Promise<void>;
  /** The connection was closed by the other side. */
  gone(): boolean;
}

/**
 * A raw HTTP/2 connection: sends the preface and SETTINGS, acknowledges the server's
 * SETTINGS (so that its limits are in force), and parses what comes back.
 */
export async function rawH2(port: number): Promise<RawH2> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => {});
  const frames: Frame[] = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const received = { type: buffered[3], flags: buffered[4], streamId: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) };
      frames.push(received);
      if (received.type === FRAME_SETTINGS && (received.flags & FLAG_ACK) === 0 && !socket.destroyed) socket.write(frame(FRAME_SETTINGS, FLAG_ACK, 0));
      buffered = buffered.subarray(9 + length);
    }
  });
  let closedYet = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closedYet = true;
      resolve();
    }),
  );
  socket.write(Buffer.concat([HTTP2_PREFACE, frame(FRAME_SETTINGS, 0, 0)]));
  return { socket, frames, closed, gone: () => closedYet };
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === FRAME_GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** A response HEADERS frame that starts with `:status 200` (HPACK static index 8), as nghttp2 encodes it. */
export function isStatus200(f: Frame): boolean {
  return f.type === FRAME_HEADERS && f.payload[0] === 0x88;
}
