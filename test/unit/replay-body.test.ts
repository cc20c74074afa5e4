import t from 'tap';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { ReplayableBody } from '../../src/policy/replay-body';
import { SidecarError } from '../../src/core/errors';

async function readAll(body: Readable | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads the first chunk of a view, then drops the view (an attempt that failed early). */
async function readFirstChunk(view: Readable): Promise<Buffer> {
  const [chunk] = (await once(view, 'data')) as [Buffer];
  view.pause();
  return chunk;
}

t.test('a body read whole by the first attempt is replayed whole, as one buffer', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 1024);
  source.end(Buffer.from('hello world'));
  const first = body.forAttempt();
  t.equal((await readAll(first)).toString(), 'hello world');
  t.ok(body.replayable);
  const second = body.forAttempt();
  t.ok(Buffer.isBuffer(second), 'a complete body is handed to undici as a buffer');
  t.equal((await readAll(second)).toString(), 'hello world');
});

t.test('an attempt that read part of the body is replaced by one that gets all of it', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 1024);
  source.write('part one,');
  const first = body.forAttempt() as Readable;
  t.equal((await readFirstChunk(first)).toString(), 'part one,');
  const second = body.forAttempt() as Readable;
  t.ok(first.destroyed, 'the replaced attempt gets no more of the body');
  const whole = readAll(second);
  source.write('part two,');
  source.end('end');
  t.equal((await whole).toString(), 'part one,part two,end', 'replayed chunks, then the rest as it arrives');
});

t.test('a body over maxBytes streams through once and cannot be replayed', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 10);
  const first = body.forAttempt();
  const read = readAll(first);
  source.write('0123456789');
  source.write('abcdef');
  source.end('XYZ');
  t.equal((await read).toString(), '0123456789abcdefXYZ', 'the first attempt got every byte');
  t.notOk(body.replayable, 'no second attempt is possible');
});

t.test('exactly maxBytes is still replayable', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 10);
  source.end('0123456789');
  await readAll(body.forAttempt());
  t.ok(body.replayable);
});

t.test('nothing is read from the client while no attempt is reading', async (t) => {
  const source = new PassThrough({ highWaterMark: 16 });
  const body = new ReplayableBody(source, 1024);
  source.write('waiting');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(source.readableLength, 7, 'the bytes stay in the client stream (its backpressure holds)');
  const view = body.forAttempt();
  source.end();
  t.equal((await readAll(view)).toString(), 'waiting');
});

t.test("the client's failure fails the attempt with a 4xx of the catalogue and ends replay", async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 1024);
  const view = body.forAttempt() as Readable;
  const failed = once(view, 'error') as Promise<[Error]>;
  view.resume();
  source.destroy(new Error('ECONNRESET'));
  const [error] = await failed;
  t.ok(error instanceof SidecarError, 'a SidecarError');
  t.equal((error as SidecarError).code, 'BAD_REQUEST');
  t.notOk(body.replayable);
});

t.test('a SidecarError of a body limit is passed on as it is', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 1024);
  const view = body.forAttempt() as Readable;
  const failed = once(view, 'error') as Promise<[Error]>;
  view.resume();
  source.destroy(new SidecarError('REQUEST_TOO_LARGE'));
  const [error] = await failed;
  t.equal((error as SidecarError).code, 'REQUEST_TOO_LARGE');
});

t.test('dispose stops listening to the client', async (t) => {
  const source = new PassThrough();
  const body = new ReplayableBody(source, 1024);
  body.forAttempt();
  body.dispose();
  t.equal(source.listenerCount('readable'), 0);
  t.equal(source.listenerCount('error'), 0);
});
