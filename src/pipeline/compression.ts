import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { COMPRESSION_BROTLI_QUALITY } from '../config/defaults';
import type { CompressionPolicy, ContentEncoding } from '../config/types';
import { availableEncodings, decideCompression, weakenEtag, type ResponseFacts } from '../policy/compression';
import type { AttemptControl } from './context';
import type { Exchange } from './exchange';
import { Interceptor } from './interceptor';

type ZstdFactory = () => Transform;
/** Node 22.15+ / 23.8+; absent on Node 20. */
const createZstdCompress = (zlib as unknown as { createZstdCompress?: ZstdFactory }).createZstdCompress;

/**
 * `routes[].compression` (only in the HTTP chain of a route that sets it): picks the encoding of
 * the app's response (policy/compression.ts) and, when it compresses, rewrites the response
 * headers and gives observe a compressor to write the body into. The compressor is piped to
 * the client's response, so the client's backpressure reaches the app as before.
 */
export class CompressionInterceptor extends Interceptor {
  private readonly available: readonly ContentEncoding[];

  constructor(private readonly policy: CompressionPolicy) {
    super();
    this.available = availableEncodings(policy.algorithms, createZstdCompress !== undefined);
  }

  dispatch(x: Exchange): void {
    this.next!.dispatch(x);
  }

  override onResponse(x: Exchange, handler: AttemptControl, statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    const facts = responseFacts(x.req.method, statusCode, rawHeaders);
    const accept = x.req.headers['accept-encoding'];
    const decision = decideCompression(this.policy, this.available, Array.isArray(accept) ? accept.join(', ') : accept, facts);
    if (decision === 'none') return this.up!.onResponse(x, handler, statusCode, rawHeaders, resume, statusText);
    const headers: Buffer[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].toString('latin1').toLowerCase();
      if (decision !== 'identity' && (name === 'content-length' || name === 'content-encoding')) continue;
      if (decision !== 'identity' && name === 'etag') {
        headers.push(rawHeaders[i], Buffer.from(weakenEtag(rawHeaders[i + 1].toString('latin1')), 'latin1'));
        continue;
      }
      headers.push(rawHeaders[i], rawHeaders[i + 1]);
    }
    headers.push(VARY, ACCEPT_ENCODING);
    if (decision === 'identity') return this.up!.onResponse(x, handler, statusCode, headers, resume, statusText);
    headers.push(CONTENT_ENCODING, Buffer.from(decision, 'latin1'));
    const compressor = compressorFor(decision);
    x.bodySink = compressor;
    compressor.on('data', (chunk: Buffer) => (x.bytesOut += chunk.length));
    compressor.on('error', () => x.res.destroy());
    compressor.pipe(x.res);
    return this.up!.onResponse(x, handler, statusCode, headers, resume, statusText);
  }

  override onEnd(x: Exchange): void {
    this.next!.onEnd(x);
    // A response cut short leaves its compressor open: release its memory.
    const sink = x.bodySink;
    if (sink !== undefined && !sink.writableFinished) sink.destroy();
  }
}

const VARY = Buffer.from('vary');
const ACCEPT_ENCODING = Buffer.from('Accept-Encoding');
const CONTENT_ENCODING = Buffer.from('content-encoding');

function compressorFor(encoding: ContentEncoding): Transform {
  switch (encoding) {
    case 'br':
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: COMPRESSION_BROTLI_QUALITY } });
    case 'gzip':
      return zlib.createGzip();
    case 'zstd':
      if (createZstdCompress === undefined) throw new Error('zstd is not available in this Node');
      return createZstdCompress();
  }
}

function responseFacts(method: string | undefined, status: number, raw: Buffer[]): ResponseFacts {
  let contentType: string | undefined;
  let contentEncoding: string | undefined;
  let contentLength: string | undefined;
  let contentRange: string | undefined;
  let cacheControl: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1').toLowerCase();
    if (name === 'content-type') contentType = raw[i + 1].toString('latin1').toLowerCase();
    else if (name === 'content-encoding') contentEncoding = raw[i + 1].toString('latin1').trim().toLowerCase();
    else if (name === 'content-length') contentLength = raw[i + 1].toString('latin1');
    else if (name === 'content-range') contentRange = raw[i + 1].toString('latin1');
    else if (name === 'cache-control') cacheControl = (cacheControl === undefined ? '' : `${cacheControl}, `) + raw[i + 1].toString('latin1').toLowerCase();
  }
  return { method, status, contentType, contentEncoding, contentLength, contentRange, cacheControl };
}
