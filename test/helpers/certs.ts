/**
 * Test PKI and TLS client helpers. Certificates come from src/tls/certificates.ts, so
 * tests exercise the same code as `sidecar certs`.
 */

import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { SniCertificate, TlsConfig } from '../../src/config/types';
import { generateCertificates, type GeneratedFiles, type KeyType } from '../../src/tls/certificates';

export interface TestPki {
  readonly dir: string;
  readonly files: GeneratedFiles;
  readonly caCertPath: string;
  readonly serverCertPath: string;
  readonly serverKeyPath: string;
  readonly clientCertPath: string;
  readonly clientKeyPath: string;
  /** PEM contents, ready for `ca`, `cert`, `key` options of TLS clients. */
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  /** Upper-case hex serial of the server certificate. */
  readonly serverSerial: string;
  /** A TlsConfig serving server.crt; `mtls: true` also requires client certificates from this CA. */
  tlsConfig(opts?: { mtls?: boolean; sni?: readonly SniCertificate[] }): TlsConfig;
}

export interface MakeTestPkiOptions {
  readonly hosts?: readonly string[];
  readonly client?: string;
  readonly clientUris?: readonly string[];
  readonly keyType?: KeyType;
}

/** CA + server certificate (localhost, 127.0.0.1, ::1) + client certificate `test-client` in `dir`. */
export async function makeTestPki(dir: string, opts: MakeTestPkiOptions = {}): Promise<TestPki> {
  const files = await generateCertificates({
    outDir: dir,
    hosts: opts.hosts ?? ['localhost'],
    client: opts.client ?? 'test-client',
    clientUris: opts.clientUris,
    keyType: opts.keyType,
  });
  const clientCertPath = files.clientCertPath ?? '';
  const clientKeyPath = files.clientKeyPath ?? '';
  const [ca, serverCert, serverKey, clientCert, clientKey] = await Promise.all(
    [files.caCertPath, files.serverCertPath, files.serverKeyPath, clientCertPath, clientKeyPath].map((f) => fsp.readFile(f)),
  );
  if (ca === undefined || serverCert === undefined || serverKey === undefined || clientCert === undefined || clientKey === undefined) {
    throw new Error('generateCertificates did not write every file');
  }
  return {
    dir,
    files,
    caCertPath: files.caCertPath,
    serverCertPath: files.serverCertPath,
    serverKeyPath: files.serverKeyPath,
    clientCertPath,
    clientKeyPath,
    ca,
    serverCert,
    serverKey,
    clientCert,
    clientKey,
    serverSerial: serialOf(serverCert),
    tlsConfig: ({ mtls = false, sni = [] } = {}) => ({
      certPath: files.serverCertPath,
      keyPath: files.serverKeyPath,
      clientCaPath: mtls ? files.caCertPath : undefined,
      sni,
    }),
  };
}

/**
 * Issues another server certificate from the CA of `caDir` into `outDir` (the CA files are
 * copied there first, so generateCertificates reuses them).
 */
export async function issueServerCertificate(
  caDir: string,
  outDir: string,
  hosts: readonly string[],
  keyType?: KeyType,
): Promise<{ certPath: string; keyPath: string; cert: Buffer; key: Buffer; serial: string }> {
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.copyFile(path.join(caDir, 'ca.crt'), path.join(outDir, 'ca.crt'));
  await fsp.copyFile(path.join(caDir, 'ca.key'), path.join(outDir, 'ca.key'));
  const files = await generateCertificates({ outDir, hosts, keyType });
  const [cert, key] = await Promise.all([fsp.readFile(files.serverCertPath), fsp.readFile(files.serverKeyPath)]);
  return { certPath: files.serverCertPath, keyPath: files.serverKeyPath, cert, key, serial: serialOf(cert) };
}

/**
 * Issues another client certificate (another workload) from the CA of `caDir` into `outDir`,
 * with the given SAN URIs (SPIFFE ids). The CA files are copied there first, as above.
 */
export async function issueClientCertificate(
  caDir: string,
  outDir: string,
  client: string,
  clientUris: readonly string[],
): Promise<{ cert: Buffer; key: Buffer }> {
  await fsp.mkdir(outDir, { recursive: true });
  await fsp.copyFile(path.join(caDir, 'ca.crt'), path.join(outDir, 'ca.crt'));
  await fsp.copyFile(path.join(caDir, 'ca.key'), path.join(outDir, 'ca.key'));
  const files = await generateCertificates({ outDir, hosts: ['localhost'], client, clientUris });
  if (files.clientCertPath === undefined || files.clientKeyPath === undefined) throw new Error('generateCertificates wrote no client certificate');
  const [cert, key] = await Promise.all([fsp.readFile(files.clientCertPath), fsp.readFile(files.clientKeyPath)]);
  return { cert, key };
}

export function serialOf(pem: Buffer | string): string {
  return new X509Certificate(pem).serialNumber.toUpperCase();
}

/** Replaces `file` the way certificate tools do: write a temporary file, then rename over. */
export async function writeFileAtomic(file: string, contents: Buffer | string, mode = 0o600): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  await fsp.writeFile(tmp, contents, { mode });
  await fsp.rename(tmp, file);
}

export interface HandshakeOptions {
  readonly port: number;
  readonly host?: string;
  /** SNI name; omit to send none (as when dialling an IP address). */
  readonly servername?: string;
  /** Trust this CA and verify the server; without it the certificate is not verified. */
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
}

/** Opens a TLS connection, returns the server's leaf certificate, and closes it. */
export function peerCertificate(opts: HandshakeOptions): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      port: opts.port,
      host: opts.host ?? '127.0.0.1',
      servername: opts.servername,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      rejectUnauthorized: opts.ca !== undefined,
      minVersion: opts.minVersion,
      maxVersion: opts.maxVersion,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert === undefined) reject(new Error('the server sent no certificate'));
      else resolve(cert);
    });
    socket.once('error', reject);
  });
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real openssl binary with stdin closed; resolves with its exit code, never rejects on a non-zero one. */
export function runOpenssl(args: readonly string[], timeoutMs = 15_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', [...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** Rejects with a clear message when `promise` does not settle in time (a guard, not a sleep). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}
