import fs from 'node:fs';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { buildConnector } from 'undici';
import type { UpstreamTlsConfig } from '../config/types';
import { SidecarError } from '../core/errors';
import { TLS_CIPHERS, watchFiles, type TlsFileWatcher } from '../tls/context';
import type { Connector } from './connection-guard';

/**
 * TLS origination for a cluster's https:// endpoints: one undici connector built from the
 * cluster's CA, client certificate and settings, rebuilt when those files change (the same
 * folder watcher as the listeners'). A connection uses the connector current when it opens;
 * open connections keep what they negotiated with. A reload that cannot read or parse the
 * files keeps the previous connector.
 *
 * Verification is always on: `rejectUnauthorized` is never false, and the name checked is
 * `serverName` or the endpoint's host (Node's checkServerIdentity).
 */
export class UpstreamTls {
  private current: Connector;
  private watcher: TlsFileWatcher | undefined;

  constructor(
    private readonly config: UpstreamTlsConfig,
    private readonly connectTimeoutMs: number,
    private readonly report: (outcome: { ok: true } | { ok: false; error: string }) => void = () => {},
    /** Offer h2 by ALPN (a cluster with protocol http2); otherwise only http/1.1. */
    private readonly allowH2 = false,
  ) {
    try {
      this.current = this.build();
    } catch (error) {
      // Checked before start (lifecycle/config-files.ts); a file gone since fails each attempt with the reason.
      const reason = `cannot load the cluster's TLS files: ${error instanceof Error ? error.message : String(error)}`;
      this.current = (_options, callback) => callback(new SidecarError('UPSTREAM_TLS_FAILURE', reason), null);
    }
  }

  /**
   * The connector undici calls for every new connection. undici derives the SNI name from the
   * request's Host header; the name sent and verified is the cluster's serverName or the
   * endpoint's own host instead, so a client's Host can never choose what is verified.
   */
  readonly connect: Connector = (options, callback) =>
    this.current({ ...options, servername: this.config.serverName ?? (isIP(options.hostname) === 0 ? options.hostname : undefined) }, callback);

  /**
   * The connector of one resolved address of a named endpoint: the TCP connection goes to
   * `address`, while the SNI and the verified name stay the endpoint's host name (or serverName).
   */
  connectorTo(address: string): Connector {
    return (options, callback) =>
      this.current({ ...options, servername: this.config.serverName ?? (isIP(options.hostname) === 0 ? options.hostname : undefined), hostname: address }, callback);
  }

  /** Starts watching the files (none: nothing to watch, the system roots are read by Node). */
  watch(): void {
    const files = [this.config.caPath, this.config.certPath, this.config.keyPath].filter((f): f is string => f !== undefined);
    if (files.length === 0 || this.watcher !== undefined) return;
    this.watcher = watchFiles(files, () => this.reload());
  }

  /** Re-reads the files; true when the new material is in use. */
  reload(): boolean {
    try {
      this.current = this.build();
      this.report({ ok: true });
      return true;
    } catch (error) {
      this.report({ ok: false, error: error instanceof Error ? error.message : String(error) });
      return false;
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private build(): Connector {
    const c = this.config;
    const options: tls.SecureContextOptions & { servername?: string; rejectUnauthorized: true } = {
      minVersion: c.minVersion,
      ciphers: TLS_CIPHERS,
      rejectUnauthorized: true,
    };
    if (c.caPath !== undefined) options.ca = readPem(c.caPath, 'ca');
    if (c.certPath !== undefined && c.keyPath !== undefined) {
      options.cert = readPem(c.certPath, 'cert');
      options.key = readPem(c.keyPath, 'key');
    }
    // Parses now, so a bad file fails the (re)load rather than each connection.
    tls.createSecureContext(options);
    if (c.serverName !== undefined) options.servername = c.serverName;
    return buildConnector({ ...options, timeout: this.connectTimeoutMs, allowH2: this.allowH2 }) as Connector;
  }
}

function readPem(file: string, field: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new Error(`tls.${field}: ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}
