import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { TlsConfig } from '../config/types';
import type { ClientCertLookup } from './handler';
import type { Logger } from '../telemetry/logger';
import {
  forwardedClientCert,
  TlsConfigError,
  TlsContextProvider,
  watchTlsFiles,
  type CertificateKeyPair,
  type ReloadResult,
  type TlsFileWatcher,
  type TlsMaterial,
  type WatchTlsFilesOptions,
} from '../tls/context';

/** A certificate that expires sooner than this is logged as a warning at load and on reload. */
export const CERTIFICATE_EXPIRY_WARNING_MS = 14 * 24 * 60 * 60 * 1000;

/**
 * The TLS side of one listener: its certificates (TlsContextProvider) and the watcher that
 * reloads them when the files change. Created with the listener and closed with it, so a
 * listener rebuilt by a config reload brings its own and the old one's watcher stops.
 *
 * A reload that fails (a missing, unreadable or mismatched file) keeps serving the
 * current certificates and logs the file at fault; the watcher tries again on the next
 * change of any file.
 */
export class ListenerTls {
  readonly provider: TlsContextProvider;
  private readonly watcher: TlsFileWatcher;

  /**
   * Reads every file now. Throws an Error naming the listener and the file when one cannot
   * be used (its cause is the TlsConfigError).
   */
  constructor(
    private readonly listenerName: string,
    config: TlsConfig,
    private readonly logger: Logger,
    watchOptions: WatchTlsFilesOptions = {},
  ) {
    try {
      this.provider = new TlsContextProvider(config);
    } catch (error) {
      if (error instanceof TlsConfigError) throw new Error(`listener ${listenerName}: ${error.message}`, { cause: error });
      throw error;
    }
    this.logCertificates('TLS certificates loaded', this.provider.material);
    this.watcher = watchTlsFiles(config, () => void this.reload(), {
      ...watchOptions,
      onError: (error) => this.logger.error({ err: error, listener: listenerName }, 'TLS certificate reload failed'),
    });
  }

  /** Whether the listener asks clients for certificates (mTLS). */
  get mutualTls(): boolean {
    return this.provider.material.clientCa !== undefined;
  }

  /** Re-reads the files; on failure the current certificates stay. Logs either way. */
  reload(): ReloadResult {
    const result = this.provider.reload();
    if (!result.ok) {
      this.logger.error(
        { listener: this.listenerName, field: `tls.${result.error.field}`, file: result.error.file, error: result.error.message },
        'TLS certificate reload failed; the current certificates stay in use',
      );
    } else if (result.changed) {
      this.logCertificates('TLS certificates reloaded; new handshakes use them', this.provider.material);
    }
    return result;
  }

  /** Compares the files with what was last seen now, instead of waiting for the watcher. */
  checkFiles(): Promise<boolean> {
    return this.watcher.check();
  }

  close(): void {
    this.watcher.close();
  }

  private logCertificates(message: string, material: TlsMaterial): void {
    const pairs: CertificateKeyPair[] = [material.defaultCertificate, ...material.sni];
    const now = Date.now();
    const certificates = pairs.map((pair) => ({
      file: pair.certPath,
      subject: pair.leaf.subject.replace(/\n/g, ', '),
      serial: pair.leaf.serialNumber.toUpperCase(),
      notAfter: new Date(pair.leaf.validTo).toISOString(),
    }));
    this.logger.info({ listener: this.listenerName, certificates, mutualTls: material.clientCa !== undefined }, message);
    for (const certificate of certificates) {
      const remainingMs = Date.parse(certificate.notAfter) - now;
      if (remainingMs < CERTIFICATE_EXPIRY_WARNING_MS) {
        this.logger.warn(
          { listener: this.listenerName, file: certificate.file, notAfter: certificate.notAfter },
          remainingMs <= 0 ? 'TLS certificate has expired' : 'TLS certificate expires soon',
        );
      }
    }
  }
}

/**
 * The x-forwarded-client-cert lookup for listeners with `clientCa`: the handler calls it with
 * the connection's socket (for HTTP/2 the session's, which proxies the TLS socket).
 */
export const clientCertFromConnection: ClientCertLookup = (socket: Socket) =>
  socket instanceof TLSSocket ? forwardedClientCert(socket) : undefined;
