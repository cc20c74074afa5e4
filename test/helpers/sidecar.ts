import path from 'node:path';
import { parseConfigText, formatConfigErrors } from '../../src/config/load';
import { Sidecar } from '../../src/sidecar';
import type { AccessLog, AccessLogEntry } from '../../src/telemetry/access-log';
import type { Logger } from '../../src/telemetry/logger';

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  /** Base URL of a listener (the first one by default). */
  url(listener?: string): string;
  readonly adminUrl: string;
  /** Access log lines, in order. */
  readonly accessLog: AccessLogEntry[];
  close(): Promise<void>;
}

/** Fixture YAML is compiled as if it lived in test/fixtures, so relative paths resolve there. */
export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures');

/**
 * Starts a real sidecar from YAML text. Listener and admin addresses should use port 0;
 * the bound ports are read back from the servers.
 */
export async function startSidecar(yaml: string, options: { dir?: string; logger?: Logger } = {}): Promise<RunningSidecar> {
  const source = path.join(options.dir ?? FIXTURE_DIR, 'inline.yaml');
  const loaded = parseConfigText(yaml, source);
  if (!loaded.ok) throw new Error(`test config is invalid:\n${formatConfigErrors(source, loaded.errors)}`);
  const lines: AccessLogEntry[] = [];
  const accessLog: AccessLog = { write: (entry) => void lines.push(entry), flush: async () => {} };
  const sidecar = await Sidecar.start(loaded.config, { accessLog, processMetrics: false, logger: options.logger });
  return {
    sidecar,
    url: (listener) => `http://127.0.0.1:${sidecar.listenerPort(listener ?? sidecar.config.listeners[0].name)}`,
    adminUrl: `http://127.0.0.1:${sidecar.admin.port}`,
    accessLog: lines,
    close: () => sidecar.stop({ graceful: false }),
  };
}

/** The smallest config with one listener routing everything to one upstream. */
export function simpleConfig(upstreamUrl: string, routeExtra = '', clusterExtra = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - name: all
        match: { prefix: / }
        cluster: app
${indent(routeExtra, 8)}
clusters:
  - name: app
    endpoints: [{ url: ${upstreamUrl} }]
${indent(clusterExtra, 4)}
`;
}

function indent(text: string, spaces: number): string {
  if (!text.trim()) return '';
  const pad = ' '.repeat(spaces);
  return text.trim().split('\n').map((line) => pad + line).join('\n');
}
