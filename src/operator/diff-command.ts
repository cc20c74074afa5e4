import { readFile } from 'node:fs/promises';
import type { ConfigError } from '../config/load';
import { formatConfigErrors } from '../config/load';
import type { FieldChange, ItemChanges } from '../config/diff';
import type { ReloadPreview } from '../admin/reload-preview';
import { adminBase, AdminUnreachable, callAdmin } from './admin-client';

/** `sidecar diff` exit codes: 0 the file would apply, 1 it is invalid, 2 it or the admin listener could not be read. */
export const DIFF_EXIT_VALID = 0;
export const DIFF_EXIT_INVALID = 1;
export const DIFF_EXIT_ERROR = 2;

export interface DiffCommandOptions {
  readonly config: string;
  readonly admin: string;
  readonly token: string | undefined;
  readonly json: boolean;
}

export async function diffCommand(options: DiffCommandOptions): Promise<number> {
  let yaml: string;
  try {
    yaml = await readFile(options.config, 'utf8');
  } catch (error) {
    process.stderr.write(`sidecar diff: cannot read ${options.config}: ${error instanceof Error ? error.message : String(error)}\n`);
    return DIFF_EXIT_ERROR;
  }
  const base = adminBase(options.admin);
  let answer;
  try {
    answer = await callAdmin(base, '/reload?dryRun=true', { token: options.token, method: 'POST', body: yaml });
  } catch (error) {
    if (!(error instanceof AdminUnreachable)) throw error;
    process.stderr.write(`sidecar diff: ${error.message}\n`);
    return DIFF_EXIT_ERROR;
  }
  if (answer.status === 422) {
    const { errors } = JSON.parse(answer.body) as { errors: ConfigError[] };
    process.stderr.write(formatConfigErrors(options.config, errors) + '\n');
    return DIFF_EXIT_INVALID;
  }
  if (answer.status !== 200) {
    process.stderr.write(`sidecar diff: ${base}/reload?dryRun=true answered ${answer.status}: ${answer.body.slice(0, 200)}\n`);
    return DIFF_EXIT_ERROR;
  }
  const preview = JSON.parse(answer.body) as ReloadPreview;
  process.stdout.write(options.json ? JSON.stringify(preview, null, 2) + '\n' : renderPreview(preview));
  return DIFF_EXIT_VALID;
}

function value(v: unknown): string {
  return v === null || v === undefined ? '(unset)' : typeof v === 'string' ? v : JSON.stringify(v);
}

function fieldLines(fields: readonly FieldChange[], indent: string): string[] {
  return fields.map((f) => `${indent}${f.field}: ${value(f.before)} → ${value(f.after)}`);
}

function itemLines(kind: string, changes: ItemChanges): string[] {
  const lines: string[] = [];
  for (const name of changes.added) lines.push(`+ ${kind} ${name}`);
  for (const name of changes.removed) lines.push(`- ${kind} ${name}`);
  for (const item of changes.changed) {
    lines.push(`~ ${kind} ${item.name}`);
    lines.push(...fieldLines(item.fields, '    '));
  }
  return lines;
}

/** The text `sidecar diff` prints. */
export function renderPreview(preview: ReloadPreview): string {
  const d = preview.diff;
  const lines = d.unchanged
    ? ['no change: the file describes the running configuration']
    : [...itemLines('listener', d.listeners), ...itemLines('route', d.routes), ...itemLines('cluster', d.clusters), ...fieldLines(d.settings, '~ ')];
  if (preview.replay === null) lines.push('recent requests: none to replay (admin.recorder is off)');
  else {
    lines.push(preview.replay.summary);
    for (const move of preview.replay.moves) lines.push(`  ${move.count} × ${move.from} → ${move.to}`);
  }
  return lines.join('\n') + '\n';
}
