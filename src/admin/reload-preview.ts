import { diffConfigs, type ConfigDiff } from '../config/diff';
import { parseConfigText, type ConfigError } from '../config/load';
import type { SidecarConfig } from '../config/types';
import { replayRoutes, type ReplayResult } from '../router/replay';
import type { RequestRecord } from '../telemetry/flight-recorder';

export interface ReloadPreview {
  readonly dryRun: true;
  readonly valid: true;
  readonly diff: ConfigDiff;
  /** null when the recorder is off: there are no recent requests to replay. */
  readonly replay: ReplayResult | null;
}

export type PreviewResult = { readonly ok: true; readonly preview: ReloadPreview } | { readonly ok: false; readonly errors: readonly ConfigError[] };

/**
 * `POST /reload?dryRun=true`: the YAML of the body compiled as if it replaced the running
 * file (relative paths resolve against the running file's folder), compared with the running
 * config, and the recorder's recent requests (`recent`, undefined when it is off) routed by both tables. Nothing is applied.
 */
export function previewReload(running: SidecarConfig, yaml: string, recent: readonly RequestRecord[] | undefined): PreviewResult {
  const loaded = parseConfigText(yaml, running.source);
  if (!loaded.ok) return { ok: false, errors: loaded.errors };
  const next = loaded.config;
  const replay =
    recent === undefined
      ? null
      : replayRoutes(
          running,
          next,
          recent.map((r) => ({ listener: r.listener, method: r.method, path: r.path, host: r.host, headers: r.requestHeaders })),
        );
  return { ok: true, preview: { dryRun: true, valid: true, diff: diffConfigs(running.document, next.document), replay } };
}
