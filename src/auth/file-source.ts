import { promises as fsp, statSync, type Stats } from 'node:fs';
import { readParsed, type Parsed } from '../config/route-files';

/** A changed file is noticed on the first request at least this long after the last look. */
export const FILE_CHECK_INTERVAL_MS = 1_000;

/**
 * The parsed contents of a file a route reads (htpasswd, JWKS), re-read when it changes. The
 * check rides on requests (one stat a second at most, in the background) rather than on a
 * watcher: a route's runtime is dropped with its config, and nothing here needs closing. A
 * file that turns bad keeps the last good contents, and the problem is reported once.
 */
export class FileSource<T> {
  private value: T;
  private checkedAt = performance.now();
  private stamp: string | undefined;
  private checking = false;
  private reported: string | undefined;

  constructor(
    private readonly file: string,
    initial: T,
    private readonly parse: (text: string) => Parsed<T>,
  ) {
    this.value = initial;
    try {
      this.stamp = stampOf(statSync(file));
    } catch {
      this.stamp = undefined;
    }
  }

  /** The last good contents; starts a look at the file when the last one is old enough. */
  current(onProblem: (message: string) => void): T {
    const now = performance.now();
    if (!this.checking && now - this.checkedAt >= FILE_CHECK_INTERVAL_MS) {
      this.checking = true;
      this.checkedAt = now;
      void this.look(onProblem).finally(() => (this.checking = false));
    }
    return this.value;
  }

  private async look(onProblem: (message: string) => void): Promise<void> {
    let stamp: string;
    try {
      const stat = await fsp.stat(this.file);
      stamp = stampOf(stat);
    } catch (error) {
      this.report(`${this.file}: ${(error as Error).message}; the last good contents stay in use`, onProblem);
      return;
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    const parsed = readParsed(this.file, this.parse);
    if (parsed.ok) {
      this.value = parsed.value;
      this.reported = undefined;
    } else {
      this.report(`${parsed.message}; the last good contents stay in use`, onProblem);
    }
  }

  private report(message: string, onProblem: (message: string) => void): void {
    if (message === this.reported) return;
    this.reported = message;
    onProblem(message);
  }
}

/** What changes when a file is written or replaced (a Kubernetes ..data swap is a new inode). */
function stampOf(stat: Stats): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}
