/**
 * What a TLS listener needs: the certificate material read from disk, the server options
 * (protocol floor, ciphers, ALPN, SNI, mTLS), hot reload of certificates without dropping
 * connections, a folder watcher that notices rotated files, and the Envoy-style
 * `x-forwarded-client-cert` value of an mTLS connection.
 *
 * Reload model: a provider holds one immutable set of secure contexts and swaps it as a
 * whole. A handshake uses whichever set is current when it starts; established
 * connections keep the context they negotiated with. A reload that fails to read or
 * validate any file leaves the current set in place.
 */

import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { TlsConfig } from '../config/types';
import { watchFileChanges } from '../core/file-watch';

/** TLS 1.0/1.1 are deprecated (RFC 8996). */
export const TLS_MIN_VERSION: tls.SecureVersion = 'TLSv1.2';
export const TLS_MAX_VERSION: tls.SecureVersion = 'TLSv1.3';

/**
 * TLS 1.2: forward-secret ECDHE with AEAD ciphers only (Mozilla "intermediate" without DHE).
 * TLS 1.3: OpenSSL's default suites. They must be listed: Node passes the `TLS_*` entries
 * of `ciphers` to OpenSSL's TLS 1.3 list, and a list without them disables TLS 1.3.
 */
export const TLS12_CIPHERS: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
export const TLS13_CIPHERSUITES: readonly string[] = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];
export const TLS_CIPHERS = [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':');

/** For http2.createSecureServer({ allowHTTP1: true }); an https.Server must advertise only http/1.1. */
export const DEFAULT_ALPN_PROTOCOLS: readonly string[] = ['h2', 'http/1.1'];

export const DEFAULT_WATCH_DEBOUNCE_MS = 100;
export const DEFAULT_WATCH_POLL_INTERVAL_MS = 2000;

/** A certificate or key file that cannot be used. `field` is the config field (`cert`, `sni[1].key`, `clientCa`). */
export class TlsConfigError extends Error {
  readonly field: string;
  readonly file: string;

  constructor(field: string, file: string, problem: string, options?: { cause?: unknown }) {
    super(`tls.${field}: ${file}: ${problem}`, options);
    this.name = 'TlsConfigError';
    this.field = field;
    this.file = file;
  }
}

export interface CertificateKeyPair {
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM as read: the leaf first, optionally followed by intermediates (sent as the chain). */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf certificate (the first one in the file). */
  readonly leaf: X509Certificate;
}

export interface SniCertificateMaterial extends CertificateKeyPair {
  /** Lower-case, without a trailing dot; `*.example.com` matches exactly one extra label. */
  readonly serverNames: readonly string[];
}

export interface ClientCaMaterial {
  readonly path: string;
  readonly pem: Buffer;
  readonly certificates: readonly X509Certificate[];
}

export interface TlsMaterial {
  readonly defaultCertificate: CertificateKeyPair;
  readonly sni: readonly SniCertificateMaterial[];
  readonly clientCa: ClientCaMaterial | undefined;
  /** sha256 over every file's path and bytes: equal values mean nothing on disk changed. */
  readonly sha256: string;
}

/** Reads and validates every file of a listener's TLS config. Throws TlsConfigError naming the file. */
export function loadTlsMaterial(config: TlsConfig): TlsMaterial {
  const hash = createHash('sha256');
  const read = (field: string, file: string, kind: PemKind): Buffer => {
    const bytes = readPemFile(field, file, kind);
    hash.update(file).update('\0').update(bytes).update('\0');
    return bytes;
  };

  const defaultCertificate = loadPair('cert', 'key', config.certPath, config.keyPath, read);
  const sni = config.sni.map((entry, i) => ({
    ...loadPair(`sni[${i}].cert`, `sni[${i}].key`, entry.certPath, entry.keyPath, read),
    serverNames: entry.serverNames.map(normaliseServerName),
  }));

  let clientCa: ClientCaMaterial | undefined;
  const clientCaPath = config.clientCaPath;
  if (clientCaPath !== undefined) {
    const pem = read('clientCa', clientCaPath, 'certificate');
    const certificates = pemBlocks(pem.toString('latin1')).map((block, i) => {
      try {
        return new X509Certificate(block);
      } catch (err) {
        throw new TlsConfigError('clientCa', clientCaPath, `certificate #${i + 1} is not valid: ${message(err)}`, { cause: err });
      }
    });
    clientCa = { path: clientCaPath, pem, certificates };
  }

  return { defaultCertificate, sni, clientCa, sha256: hash.digest('hex') };
}

type PemKind = 'certificate' | 'key';

function loadPair(
  certField: string,
  keyField: string,
  certPath: string,
  keyPath: string,
  read: (field: string, file: string, kind: PemKind) => Buffer,
): CertificateKeyPair {
  const cert = read(certField, certPath, 'certificate');
  const key = read(keyField, keyPath, 'key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new TlsConfigError(certField, certPath, `not a valid certificate: ${message(err)}`, { cause: err });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsConfigError(keyField, keyPath, `not a valid private key: ${message(err)}`, { cause: err });
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(keyField, keyPath, `does not match the certificate ${certPath}`);
  }
  return { certPath, keyPath, cert, key, leaf };
}

const CERTIFICATE_MARKER = '-----BEGIN CERTIFICATE-----';
const PRIVATE_KEY_MARKER = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/;
const ENCRYPTED_KEY_MARKER = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

function readPemFile(field: string, file: string, kind: PemKind): Buffer {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new TlsConfigError(field, file, readProblem(err), { cause: err });
  }
  const text = bytes.toString('latin1');
  if (kind === 'certificate') {
    if (!text.includes(CERTIFICATE_MARKER)) {
      const hint = PRIVATE_KEY_MARKER.test(text) ? ' (it holds a private key: are cert and key swapped?)' : '';
      throw new TlsConfigError(field, file, `not a PEM certificate, expected ${CERTIFICATE_MARKER}${hint}`);
    }
  } else if (ENCRYPTED_KEY_MARKER.test(text)) {
    throw new TlsConfigError(field, file, 'the private key is encrypted; provide it without a passphrase');
  } else if (!PRIVATE_KEY_MARKER.test(text)) {
    const hint = text.includes(CERTIFICATE_MARKER) ? ' (it holds a certificate: are cert and key swapped?)' : '';
    throw new TlsConfigError(field, file, `not a PEM private key, expected -----BEGIN PRIVATE KEY-----${hint}`);
  }
  return bytes;
}

function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    default:
      return `cannot read: ${message(err)}`;
  }
}

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

export function normaliseServerName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

// ---------------------------------------------------------------------------------------
// Secure contexts

interface ContextSet {
  readonly material: TlsMaterial;
  readonly defaultOptions: tls.SecureContextOptions;
  readonly defaultContext: tls.SecureContext;
  /** Exact server name → context. */
  readonly exact: ReadonlyMap<string, tls.SecureContext>;
  /** Suffix after `*.` → context. */
  readonly wildcard: ReadonlyMap<string, tls.SecureContext>;
}

export type ReloadResult = { ok: true; changed: boolean } | { ok: false; error: TlsConfigError };

export interface ServerOptionsOverrides {
  /** Default ['h2', 'http/1.1']; pass ['http/1.1'] for an https (HTTP/1 only) server. */
  readonly alpnProtocols?: readonly string[];
}

/**
 * One per TLS listener. Build it from the listener's TlsConfig, create the server with
 * `serverOptions()`, then `attach(server)` so reloads also replace the certificate served
 * to clients that send no SNI (those never reach the SNICallback).
 */
export class TlsContextProvider {
  private config: TlsConfig;
  private current: ContextSet;
  private readonly servers = new Set<tls.Server>();
  /**
   * Fixed per provider: with client certificates requested, OpenSSL refuses to resume a
   * session unless a session id context is set, and it must not change across reloads.
   */
  private readonly sessionIdContext: string;

  /** Throws TlsConfigError when a file is missing or invalid. */
  constructor(config: TlsConfig) {
    this.config = config;
    this.sessionIdContext = createHash('sha256').update(`sidecar:${config.certPath}`).digest('hex').slice(0, 32);
    this.current = this.build(loadTlsMaterial(config));
  }

  get material(): TlsMaterial {
    return this.current.material;
  }

  /** Options for `https.createServer` / `http2.createSecureServer` / `tls.createServer`. */
  serverOptions(overrides: ServerOptionsOverrides = {}): tls.TlsOptions {
    const mutualTls = this.config.clientCaPath !== undefined;
    return {
      ...this.current.defaultOptions,
      ALPNProtocols: [...(overrides.alpnProtocols ?? DEFAULT_ALPN_PROTOCOLS)],
      SNICallback: (servername, cb) => cb(null, this.contextFor(servername)),
      // requestCert/rejectUnauthorized are fixed when the server is created; whether a
      // client CA is configured therefore cannot change on reload (see reload()).
      requestCert: mutualTls,
      rejectUnauthorized: mutualTls,
    };
  }

  /** The secure context a handshake with this SNI server name gets. */
  contextFor(servername: string | undefined): tls.SecureContext {
    const set = this.current;
    if (servername === undefined || servername === '') return set.defaultContext;
    const name = normaliseServerName(servername);
    const exact = set.exact.get(name);
    if (exact !== undefined) return exact;
    // A wildcard covers exactly one label: strip the first one and look up the rest.
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wildcard = set.wildcard.get(name.slice(dot + 1));
      if (wildcard !== undefined) return wildcard;
    }
    return set.defaultContext;
  }

  /** Remembers the server so reloads replace its default (no-SNI) context too. */
  attach(server: tls.Server): void {
    this.servers.add(server);
  }

  detach(server: tls.Server): void {
    this.servers.delete(server);
  }

  /**
   * Re-reads the files (of `config` when given, e.g. after a config reload changed the
   * paths) and swaps all contexts at once. On any error nothing changes.
   */
  reload(config: TlsConfig = this.config): ReloadResult {
    if ((config.clientCaPath === undefined) !== (this.config.clientCaPath === undefined)) {
      return {
        ok: false,
        error: new TlsConfigError(
          'clientCa',
          config.clientCaPath ?? this.config.clientCaPath ?? '',
          'turning client certificates on or off needs a listener restart',
        ),
      };
    }
    let next: ContextSet;
    try {
      next = this.build(loadTlsMaterial(config));
    } catch (err) {
      if (err instanceof TlsConfigError) return { ok: false, error: err };
      return { ok: false, error: new TlsConfigError('cert', config.certPath, message(err), { cause: err }) };
    }
    const changed = next.material.sha256 !== this.current.material.sha256;
    for (const server of this.servers) server.setSecureContext(next.defaultOptions);
    this.config = config;
    this.current = next;
    return { ok: true, changed };
  }

  private build(material: TlsMaterial): ContextSet {
    const optionsFor = (pair: CertificateKeyPair, field: string): { options: tls.SecureContextOptions; context: tls.SecureContext } => {
      const options: tls.SecureContextOptions = {
        cert: pair.cert,
        key: pair.key,
        // Every context carries the client CA: a context chosen by SNI replaces the
        // server's for that handshake, including the store client certificates verify against.
        ca: material.clientCa?.pem,
        minVersion: TLS_MIN_VERSION,
        maxVersion: TLS_MAX_VERSION,
        ciphers: TLS_CIPHERS,
        honorCipherOrder: true,
        sessionIdContext: this.sessionIdContext,
      };
      try {
        return { options, context: tls.createSecureContext(options) };
      } catch (err) {
        throw new TlsConfigError(field, pair.certPath, `rejected by OpenSSL: ${message(err)}`, { cause: err });
      }
    };

    const defaults = optionsFor(material.defaultCertificate, 'cert');
    const exact = new Map<string, tls.SecureContext>();
    const wildcard = new Map<string, tls.SecureContext>();
    material.sni.forEach((entry, i) => {
      const { context } = optionsFor(entry, `sni[${i}].cert`);
      for (const name of entry.serverNames) {
        const [map, key] = name.startsWith('*.') ? [wildcard, name.slice(2)] : [exact, name];
        // The first entry naming a server wins, as routes do.
        if (!map.has(key)) map.set(key, context);
      }
    });
    return { material, defaultOptions: defaults.options, defaultContext: defaults.context, exact, wildcard };
  }
}

// ---------------------------------------------------------------------------------------
// Watching certificate files

export interface TlsFileWatcher {
  /** Re-hashes the files now; calls onChange and resolves true when any content changed. */
  check(): Promise<boolean>;
  close(): void;
}

export interface WatchTlsFilesOptions {
  readonly debounceMs?: number;
  readonly pollIntervalMs?: number;
  /** Errors thrown by onChange. Default: a process warning. */
  readonly onError?: (err: unknown) => void;
}

/** Every file of a TLS config, without duplicates. */
export function tlsFilePaths(config: TlsConfig): string[] {
  const files = [config.certPath, config.keyPath];
  if (config.clientCaPath !== undefined) files.push(config.clientCaPath);
  for (const entry of config.sni) files.push(entry.certPath, entry.keyPath);
  return [...new Set(files)];
}

/**
 * Calls onChange when the content of any certificate, key or CA file changes.
 *
 * Watches the folders, not the files: tools replace certificates by renaming a new file
 * over the old one, and Kubernetes swaps a `..data` symlink to a new directory; either
 * way the watched inode is no longer the file. Events are debounced (one rotation touches
 * several files) and only a change of content hash counts, so touching or re-writing
 * identical bytes does nothing. A poll every 2s is the backstop for file systems where
 * fs.watch misses events (network mounts, some containers); its timer never keeps the
 * process alive.
 */
export function watchTlsFiles(config: TlsConfig, onChange: () => void, options: WatchTlsFilesOptions = {}): TlsFileWatcher {
  return watchFiles(tlsFilePaths(config), onChange, options);
}

/**
 * watchTlsFiles for any list of files (e.g. an upstream cluster's CA and client certificate).
 * The watching is core/file-watch.ts's; this adds the content hash that decides a change.
 */
export function watchFiles(files: readonly string[], onChange: () => void, options: WatchTlsFilesOptions = {}): TlsFileWatcher {
  const onError =
    options.onError ?? ((err: unknown) => process.emitWarning(`TLS file change handler failed: ${message(err)}`));
  let closed = false;
  // The baseline is taken synchronously so a change right after this call is not lost.
  let lastHash = hashFilesSync(files);
  // Checks run one after another so two overlapping checks cannot both report one change.
  let queue: Promise<boolean> = Promise.resolve(false);

  const runCheck = async (): Promise<boolean> => {
    if (closed) return false;
    const hash = await hashFiles(files);
    if (closed || hash === lastHash) return false;
    lastHash = hash;
    try {
      onChange();
    } catch (err) {
      onError(err);
    }
    return true;
  };
  const check = (): Promise<boolean> => {
    queue = queue.then(runCheck, runCheck);
    return queue;
  };
  const watcher = watchFileChanges(files, () => void check(), {
    debounceMs: options.debounceMs ?? DEFAULT_WATCH_DEBOUNCE_MS,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULT_WATCH_POLL_INTERVAL_MS,
  });

  return {
    check,
    close(): void {
      closed = true;
      watcher.close();
    },
  };
}

function hashFilesSync(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    let bytes: Buffer | undefined;
    try {
      bytes = fs.readFileSync(file);
    } catch {
      bytes = undefined;
    }
    addToHash(hash, file, bytes);
  }
  return hash.digest('hex');
}

async function hashFiles(files: readonly string[]): Promise<string> {
  const contents = await Promise.all(files.map((file) => fs.promises.readFile(file).catch(() => undefined)));
  const hash = createHash('sha256');
  files.forEach((file, i) => addToHash(hash, file, contents[i]));
  return hash.digest('hex');
}

function addToHash(hash: ReturnType<typeof createHash>, file: string, bytes: Buffer | undefined): void {
  hash.update(file).update('\0');
  // A missing file is a state of its own: its disappearance and its return both count.
  if (bytes === undefined) hash.update('missing\0');
  else hash.update('present\0').update(bytes).update('\0');
}

// ---------------------------------------------------------------------------------------
// x-forwarded-client-cert

const forwardedClientCertCache = new WeakMap<tls.TLSSocket, string>();

/**
 * The Envoy `x-forwarded-client-cert` element for a connection whose client presented a
 * certificate that verified against the client CA:
 *   Hash=<sha256 hex of the DER>;Subject="<RFC 2253 subject>";URI=<uri SAN>;DNS=<dns SAN>
 * (one URI=/DNS= pair per SAN entry, none when there are none). Values containing `,`, `;`,
 * `=` or `"` are double-quoted with `"` escaped as `\"`; Subject is always quoted. Returns
 * undefined for connections without a verified client certificate. Computed once per
 * connection. For HTTP/2 pass `req.socket` (one object per session).
 */
export function forwardedClientCert(socket: tls.TLSSocket): string | undefined {
  // Before the handshake completes `authorized` is false: nothing is cached then.
  if (!socket.authorized) return undefined;
  const cached = forwardedClientCertCache.get(socket);
  if (cached !== undefined) return cached;
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return undefined;
  const value = formatForwardedClientCert(peer);
  forwardedClientCertCache.set(socket, value);
  return value;
}

/** The XFCC element for one certificate (exported for tests and for non-socket callers). */
export function formatForwardedClientCert(cert: X509Certificate): string {
  const parts = [
    `Hash=${createHash('sha256').update(cert.raw).digest('hex')}`,
    `Subject=${quoteXfcc(rfc2253Subject(cert.subject))}`,
  ];
  const sans = parseSubjectAltName(cert.subjectAltName);
  for (const san of sans) if (san.type === 'URI') parts.push(`URI=${xfccValue(san.value)}`);
  for (const san of sans) if (san.type === 'DNS') parts.push(`DNS=${xfccValue(san.value)}`);
  return parts.join(';');
}

function xfccValue(value: string): string {
  return /[,;="]/.test(value) ? quoteXfcc(value) : value;
}

/** A quoted-string: `\` and `"` inside are backslash-escaped, so the value cannot end it early. */
function quoteXfcc(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Node prints a subject one attribute per line, in certificate order, with ` + ` between the
 * parts of a multi-valued RDN and OpenSSL's own escaping of each value. RFC 4514 lists the
 * RDNs in reverse order, separated by `,` — the format Envoy uses for Subject. Each value is
 * read back to its plain text and escaped again by RFC 4514 §2.4 here, so the header does not
 * depend on how a Node or OpenSSL version chooses to print names.
 */
export function rfc2253Subject(nodeSubject: string): string {
  return nodeSubject
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => splitUnescaped(line, ' + ').map(rfc4514Attribute).join('+'))
    .reverse()
    .join(',');
}

/** `TYPE=value` as Node prints it → `TYPE=value` with the value escaped by RFC 4514. */
function rfc4514Attribute(printed: string): string {
  const equals = printed.indexOf('=');
  if (equals < 0) return escapeRfc4514Value(unescapeDnValue(printed));
  return `${printed.slice(0, equals)}=${escapeRfc4514Value(unescapeDnValue(printed.slice(equals + 1)))}`;
}

/** Splits at `separator` where it does not start inside a `\x` escape. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      i++;
      continue;
    }
    if (text.startsWith(separator, i)) {
      parts.push(text.slice(start, i));
      start = i + separator.length;
      i = start - 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;

/** Undoes `\c` and `\XX` (hex byte) escapes; hex bytes are decoded as UTF-8. */
export function unescapeDnValue(escaped: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped[i];
    if (ch === '\\' && i + 1 < escaped.length) {
      const pair = escaped.slice(i + 1, i + 3);
      if (HEX_PAIR.test(pair)) {
        bytes.push(parseInt(pair, 16));
        i += 2;
      } else {
        for (const b of Buffer.from(escaped[i + 1], 'utf8')) bytes.push(b);
        i += 1;
      }
      continue;
    }
    const codePoint = escaped.codePointAt(i) ?? 0;
    const text = String.fromCodePoint(codePoint);
    for (const b of Buffer.from(text, 'utf8')) bytes.push(b);
    i += text.length - 1;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** RFC 4514 §2.4 specials, escaped with a backslash wherever they occur. */
const RFC4514_SPECIAL = new Set([',', '+', '"', '\\', '<', '>', ';']);

/**
 * RFC 4514 §2.4: `,+"\<>;` anywhere, `#` or space first, space last get a backslash; NUL
 * becomes `\00`. Other control characters are written as `\XX` too (allowed by the RFC), so
 * no raw control byte reaches a header.
 */
export function escapeRfc4514Value(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (RFC4514_SPECIAL.has(ch)) out += `\\${ch}`;
    else if (i === 0 && (ch === '#' || ch === ' ')) out += `\\${ch}`;
    else if (i === value.length - 1 && ch === ' ') out += '\\ ';
    else out += ch;
  }
  return out;
}

export interface SubjectAltName {
  /** `DNS`, `URI`, `IP Address`, `email`, ... as Node prints them. */
  readonly type: string;
  readonly value: string;
}

/**
 * Parses X509Certificate#subjectAltName (`DNS:a, URI:spiffe://x, IP Address:127.0.0.1`).
 * Node writes a value containing `,`, `"` or other special characters as a JSON string
 * (`URI:"http://x/?a=1,2"`), which is what keeps this split unambiguous.
 */
export function parseSubjectAltName(text: string | undefined): SubjectAltName[] {
  const result: SubjectAltName[] = [];
  if (text === undefined) return result;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      let end = j + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(j, end + 1)) as string;
      j = end + 1;
    } else {
      const comma = text.indexOf(', ', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    result.push({ type, value });
    i = text.startsWith(', ', j) ? j + 2 : j + 1;
  }
  return result;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
