import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { formatConfigErrors, loadConfigFile } from '../../src/config/load';
import type { ConfigReloader, ReloadOutcome } from '../../src/lifecycle/reloader';
import { Sidecar, type SidecarOptions } from '../../src/sidecar';
import type { AccessLog, AccessLogEntry } from '../../src/telemetry/access-log';

/** Long enough for a loaded 2-core machine; the awaited event normally comes in well under a second. */
export const RELOAD_WAIT_MS = 15_000;

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Replaces `file` the way vim, `sed -i` and deploy tools do: write a temporary file, rename it over. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  await fsp.writeFile(tmp, text);
  await fsp.rename(tmp, file);
}

export interface FileSidecar {
  readonly sidecar: Sidecar;
  readonly file: string;
  url(listener?: string): string;
  adminUrl(): string;
  readonly accessLog: AccessLogEntry[];
  close(): Promise<void>;
}

/** Starts a sidecar from a real file (so it can be reloaded), watching it unless `watchConfig: false`. */
export async function startSidecarFromFile(file: string, options: Pick<SidecarOptions, 'watchConfig' | 'logger'> = {}): Promise<FileSidecar> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new Error(`test config is invalid:\n${formatConfigErrors(file, loaded.errors)}`);
  const lines: AccessLogEntry[] = [];
  const accessLog: AccessLog = { write: (entry) => void lines.push(entry), flush: async () => {} };
  const sidecar = await Sidecar.start(loaded.config, {
    accessLog,
    processMetrics: false,
    logger: options.logger,
    // Events only: a poll would hide a watch that missed the change.
    watchConfig: options.watchConfig ?? { debounceMs: 50, pollIntervalMs: 3_600_000 },
  });
  return {
    sidecar,
    file,
    url: (listener) => `http://127.0.0.1:${sidecar.listenerPort(listener ?? sidecar.config.listeners[0].name)}`,
    adminUrl: () => `http://127.0.0.1:${sidecar.admin.port}`,
    accessLog: lines,
    close: () => sidecar.stop({ graceful: false }),
  };
}

/**
 * The next reload outcome that satisfies `accept` (outcomes before it are skipped); rejects
 * after `timeoutMs`, naming what was seen meanwhile.
 */
export function nextReload(reloader: ConfigReloader, accept: (o: ReloadOutcome) => boolean, timeoutMs = RELOAD_WAIT_MS): Promise<ReloadOutcome> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const onReload = (outcome: ReloadOutcome): void => {
      seen.push(`${outcome.result}/${outcome.trigger}`);
      if (!accept(outcome)) return;
      clearTimeout(timer);
      reloader.off('reload', onReload);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      reloader.off('reload', onReload);
      reject(new Error(`no matching reload within ${timeoutMs}ms (seen: ${seen.join(', ') || 'none'})`));
    }, timeoutMs);
    reloader.on('reload', onReload);
  });
}

/** Resolves with the outcome that applied exactly `text`. */
export function appliedText(reloader: ConfigReloader, text: string): Promise<ReloadOutcome> {
  const expected = sha256(text);
  return nextReload(reloader, (o) => o.result === 'applied' && o.sha256 === expected);
}

