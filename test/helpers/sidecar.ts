import path from 'node:path';
import { parseConfigText, formatConfigErrors } from '../../src/config/load';
import { Sidecar } from '../../src/sidecar';
import type { AccessLog, AccessLogEntry } from '../../src/telemetry/access-log';
import type { Logger } from '../../src/telemetry/logger';
import type { HostResolver } from '../../src/upstream/dns';
import type { TestPki } from './certs';

export interface RunningSidecar {
  readonly sidecar: Sidecar;
  /** Base URL of a listener (the first one by default); `https://localhost:PORT` for a TLS listener. */
  url(listener?: string): string;
  /** The bound port of a listener (the first one by default). */
  port(listener?: string): number;
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
export async function startSidecar(yaml: string, options: { dir?: string; logger?: Logger; resolver?: HostResolver } = {}): Promise<RunningSidecar> {
  const source = path.join(options.dir ?? FIXTURE_DIR, 'inline.yaml');
  const loaded = parseConfigText(yaml, source);
  if (!loaded.ok) throw new Error(`test config is invalid:\n${formatConfigErrors(source, loaded.errors)}`);
  const lines: AccessLogEntry[] = [];
  const accessLog: AccessLog = { write: (entry) => void lines.push(entry), flush: async () => {} };
  const sidecar = await Sidecar.start(loaded.config, { accessLog, processMetrics: false, logger: options.logger, resolver: options.resolver });
  const port = (listener?: string): number => sidecar.listenerPort(listener ?? sidecar.config.listeners[0].name);
  return {
    sidecar,
    url: (listener) => {
      const config = sidecar.config.listeners.find((l) => l.name === (listener ?? sidecar.config.listeners[0].name));
      // Test certificates are issued for localhost (and 127.0.0.1).
      return config?.tls !== undefined ? `https://localhost:${port(listener)}` : `http://127.0.0.1:${port(listener)}`;
    },
    port,
    adminUrl: `http://127.0.0.1:${sidecar.admin.port}`,
    accessLog: lines,
    close: () => sidecar.stop({ graceful: false }),
  };
}

/** The smallest config with one listener routing everything to one upstream. */
export function simpleConfig(upstreamUrl: string, routeExtra = '', clusterExtra = '', listenerExtra = ''): string {
  return `
admin: { address: 127.0.0.1:0 }
listeners:
  - name: main
    address: 127.0.0.1:0${listenerExtra.trim() ? `\n${indent(listenerExtra, 4)}` : ''}
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

/**
 * A sidecar on simpleConfig in front of `app`; the test's teardown closes the sidecar, then
 * the app.
 */
export async function startSidecarFor(
  t: { teardown(fn: () => Promise<void>): void },
  app: { readonly url: string; close(): Promise<void> },
  routeExtra = '',
  clusterExtra = '',
  listenerExtra = '',
): Promise<RunningSidecar> {
  const proxy = await startSidecar(simpleConfig(app.url, routeExtra, clusterExtra, listenerExtra));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });
  return proxy;
}

/**
 * A sidecar from YAML text (as startSidecar); the test's teardown closes the sidecar, then each
 * of `alsoClose` in order (the apps, key servers and auth services it talks to).
 */
export async function startSidecarWith(
  t: { teardown(fn: () => Promise<void>): void },
  yaml: string,
  alsoClose: ReadonlyArray<{ close(): Promise<void> }>,
  options: { logger?: Logger } = {},
): Promise<RunningSidecar> {
  const proxy = await startSidecar(yaml, options);
  t.teardown(async () => {
    await proxy.close();
    for (const other of alsoClose) await other.close();
  });
  return proxy;
}

/**
 * The `tls:` block of a listener that serves the PKI's server certificate and requires a
 * client certificate from its CA (mTLS), indented for a listener entry of `listeners:`.
 */
export function mtlsListenerTls(pki: TestPki): string {
  return `    tls:
      cert: ${JSON.stringify(pki.serverCertPath)}
      key: ${JSON.stringify(pki.serverKeyPath)}
      clientCa: ${JSON.stringify(pki.caCertPath)}`;
}
