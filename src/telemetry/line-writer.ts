import fs from 'node:fs';
import path from 'node:path';

/** Bytes held for a destination that does not keep up; lines beyond are dropped and counted. */
export const LINE_WRITER_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Buffered lines leave once they reach this size... */
export const LINE_WRITER_FLUSH_BYTES = 64 * 1024;
/** ...or this long after the first of them arrived, whichever comes first. */
export const LINE_WRITER_FLUSH_INTERVAL_MS = 250;
/** Wait before writing again to a non-blocking pipe that was full (EAGAIN). */
const PIPE_FULL_RETRY_MS = 10;

export interface LineWriterOptions {
  /**
   * Each write() holds whole lines and at most this many bytes (lines must not be longer),
   * for destinations other processes write to as well (see PIPE_BUF).
   */
  readonly maxWriteBytes?: number;
  /** Told of each line dropped because the buffer was full. */
  readonly onDropped?: () => void;
}

export interface LineWriterStats {
  /** Lines dropped because the destination did not keep up (the buffer was full). */
  dropped: number;
  /** The last write error (other than a full pipe); writing goes on with later lines. */
  lastError: string | undefined;
}

/**
 * Appends text lines to a file descriptor off the request path, as Envoy's file access log
 * does: lines are buffered and leave in one write once LINE_WRITER_FLUSH_BYTES have gathered
 * or LINE_WRITER_FLUSH_INTERVAL_MS after the first of them, through the libuv thread pool.
 * A write per request (or per loop turn) costs a thread-pool wake-up each, which on a proxy
 * pinned to one core is a context switch per write: profiles showed it at 5-6% of the CPU.
 * It never blocks on a slow disk or a full pipe: it buffers up to
 * LINE_WRITER_MAX_BUFFERED_BYTES and drops lines beyond (counted in `stats.dropped`), as a
 * proxy must rather than stall its requests on logging.
 *
 * Invariant: at most one fs.write is in flight, and bytes leave in the order they were written
 * (a partial write keeps its remainder at the front).
 */
export class LineWriter {
  readonly stats: LineWriterStats = { dropped: 0, lastError: undefined };
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The part of a write the destination did not take yet (a partial write or a full pipe). */
  private remainder: Buffer | undefined;
  private writing = false;
  private scheduled = false;
  /** The timer or a flush asked for a write while one was in flight. */
  private dueAfterWrite = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** A due batch was cut into several whole-line writes and has more to go. */
  private batchContinues = false;
  private readonly flushWaiters: Array<() => void> = [];

  private constructor(
    private readonly fd: number,
    private readonly ownsFd: boolean,
    private readonly options: LineWriterOptions,
  ) {}

  /** `stdout`/`stderr` share the process's descriptors; a path is opened for appending (its folder created). */
  static open(destination: 'stdout' | 'stderr' | string, options: LineWriterOptions = {}): LineWriter {
    if (destination === 'stdout') return new LineWriter(1, false, options);
    if (destination === 'stderr') return new LineWriter(2, false, options);
    fs.mkdirSync(path.dirname(destination), { recursive: true });
    return new LineWriter(fs.openSync(destination, 'a'), true, options);
  }

  /** A descriptor the caller owns (left open by close()). */
  static fromDescriptor(fd: number, options: LineWriterOptions = {}): LineWriter {
    return new LineWriter(fd, false, options);
  }

  /** `line` must end with a newline. */
  write(line: string): void {
    if (this.closed) return;
    // String length bounds the UTF-8 size from below; close enough for a memory bound.
    if (this.pendingBytes + line.length > LINE_WRITER_MAX_BUFFERED_BYTES) {
      this.stats.dropped++;
      this.options.onDropped?.();
      return;
    }
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= LINE_WRITER_FLUSH_BYTES) this.schedule();
    else this.flushTimer ??= setTimeout(scheduleWrite, LINE_WRITER_FLUSH_INTERVAL_MS, this).unref();
  }

  /** @internal writes what is buffered on the next loop turn. */
  schedule(): void {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.writing) {
      this.dueAfterWrite = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(writeNext, this);
  }

  /** Resolves once every line written so far has left (or failed to). */
  flush(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    this.schedule();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** Flushes, then closes a descriptor this writer opened; later lines are ignored. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.ownsFd) fs.close(this.fd, () => {});
  }

  /** @internal a batch is due (full, timed out or flushed), or a write finished with more due. */
  writeNext(): void {
    this.scheduled = false;
    if (this.writing || this.retryTimer !== undefined) return;
    let chunk = this.remainder;
    this.remainder = undefined;
    if (chunk === undefined) {
      if (this.pending.length === 0) {
        this.settleFlushes();
        return;
      }
      const maxWriteBytes = this.options.maxWriteBytes;
      chunk = maxWriteBytes === undefined ? this.takeAll() : this.takeWholeLinesUpTo(maxWriteBytes);
    }
    this.writing = true;
    this.dueAfterWrite = false;
    const buffer = chunk;
    fs.write(this.fd, buffer, 0, buffer.length, null, (error, written) => this.written(buffer, error, written));
  }

  private takeAll(): Buffer {
    this.batchContinues = false;
    const chunk = Buffer.from(this.pending.length === 1 ? this.pending[0] : this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
    return chunk;
  }

  /** The first lines that fit in `maxBytes` together (at least one); the rest stays pending. */
  private takeWholeLinesUpTo(maxBytes: number): Buffer {
    let bytes = 0;
    let count = 0;
    for (const line of this.pending) {
      const size = Buffer.byteLength(line);
      if (count > 0 && bytes + size > maxBytes) break;
      bytes += size;
      count++;
    }
    const lines = this.pending.splice(0, count);
    this.batchContinues = this.pending.length > 0;
    for (const line of lines) this.pendingBytes -= line.length;
    return Buffer.from(lines.length === 1 ? lines[0] : lines.join(''));
  }

  private written(buffer: Buffer, error: NodeJS.ErrnoException | null, written: number): void {
    this.writing = false;
    if (error !== null) {
      if (error.code === 'EAGAIN') {
        // A non-blocking pipe is full: the same bytes go again once the reader made room.
        this.remainder = buffer;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.writeNext();
        }, PIPE_FULL_RETRY_MS);
        return;
      }
      this.stats.lastError = `${error.code ?? 'error'}: ${error.message}`;
    } else if (written < buffer.length) {
      this.remainder = buffer.subarray(written);
    }
    // Lines that came during the write wait for their batch to fill or their timer (armed by
    // write()), unless something is due now.
    // (A batch cut into whole-line writes goes on with its next write.)
    if (this.remainder !== undefined || this.dueAfterWrite || this.flushWaiters.length > 0 || this.pendingBytes >= LINE_WRITER_FLUSH_BYTES || this.batchContinues) this.writeNext();
    else if (this.pending.length === 0) this.settleFlushes();
  }

  private busy(): boolean {
    return this.writing || this.scheduled || this.retryTimer !== undefined || this.remainder !== undefined || this.pending.length > 0;
  }

  private settleFlushes(): void {
    const waiters = this.flushWaiters.splice(0);
    for (const resolve of waiters) resolve();
  }
}

function scheduleWrite(writer: LineWriter): void {
  writer.schedule();
}

function writeNext(writer: LineWriter): void {
  writer.writeNext();
}
