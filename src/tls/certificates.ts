/**
 * Local certificate authority for development and demos (`sidecar certs`).
 *
 * Keys come from node:crypto (native, off the main thread); node-forge only builds the
 * X.509 structures (names, extensions, ASN.1/DER). The to-be-signed certificate is signed
 * with node:crypto too, which is what lets the same code issue RSA and P-256 (ECDSA)
 * certificates: forge itself can only sign with RSA keys and only embed RSA public keys.
 *
 * Files written to `outDir` (PEM):
 *   ca.crt / ca.key            the local CA (10 years), reused when both already exist
 *   server.crt / server.key    the serving certificate (SANs from hosts and ips)
 *   client.crt / client.key    only with `client`: a certificate for mTLS clients
 * Private keys are PKCS#8, mode 0600; certificates mode 0644. Files are replaced
 * atomically (write to a temporary file, then rename), so a sidecar watching the folder
 * never reads half a file.
 *
 * Reusing the CA: when `ca.crt` and `ca.key` exist in `outDir`, new server/client
 * certificates are signed by that CA instead of a new one. Clients that already trust
 * the CA keep working, and running the command again with more `--host` values just
 * re-issues the server certificate. Delete both CA files to start a new CA.
 *
 * IP SANs: when `hosts` contains `localhost` the certificate also covers 127.0.0.1 and ::1,
 * so clients dialling the loopback address verify too; `ips` adds more addresses. A `hosts`
 * entry that is an IP literal goes into the IP SANs, where clients look for it.
 */

import {
  createHash,
  generateKeyPair,
  randomBytes,
  sign,
  X509Certificate,
  createPrivateKey,
  type KeyObject,
} from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { domainToASCII } from 'node:url';
import { promisify } from 'node:util';
import forge from 'node-forge';

/** CA/Browser Forum limit for publicly trusted leaf certificates; clients such as Safari enforce it for all. */
export const MAX_LEAF_VALIDITY_DAYS = 397;
export const DEFAULT_LEAF_VALIDITY_DAYS = MAX_LEAF_VALIDITY_DAYS;
export const DEFAULT_CA_VALIDITY_DAYS = 3650;
export const DEFAULT_RSA_MODULUS_BITS = 2048;
/** notBefore is set this far in the past so peers with a slightly slow clock accept a fresh certificate. */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;
export const SERIAL_NUMBER_BYTES = 16;

const DAY_MS = 24 * 60 * 60 * 1000;
const PRIVATE_KEY_MODE = 0o600;
const CERTIFICATE_MODE = 0o644;
const OUT_DIR_MODE = 0o700;

export type KeyType = 'rsa' | 'ec';

export interface GenerateCertificatesOptions {
  readonly outDir: string;
  /** DNS names for the server certificate (`localhost`, `api.example.com`, `*.example.com`). */
  readonly hosts: readonly string[];
  /** IP SANs, in addition to 127.0.0.1 and ::1 which are always included with localhost. */
  readonly ips?: readonly string[];
  /** Server and client certificate validity in days, 1..397. Default 397. */
  readonly days?: number;
  /** When set, also issue a client certificate with this common name (for mTLS). */
  readonly client?: string;
  /** URI SANs of the client certificate, e.g. a SPIFFE ID. */
  readonly clientUris?: readonly string[];
  /** Key algorithm for new keys: RSA 2048 (default) or ECDSA P-256. */
  readonly keyType?: KeyType;
}

/** Absolute paths of the files written (only paths: callers may print every value). */
export interface GeneratedFiles {
  readonly caCertPath: string;
  readonly caKeyPath: string;
  readonly serverCertPath: string;
  readonly serverKeyPath: string;
  readonly clientCertPath: string | undefined;
  readonly clientKeyPath: string | undefined;
}

export const CERT_FILE_NAMES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientCert: 'client.crt',
  clientKey: 'client.key',
} as const;

const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
} as const;

const ORGANIZATION = 'sidecar';
/** Added whenever hosts include localhost: clients dialling the loopback address then verify too. */
const LOOPBACK_IPS: readonly string[] = ['127.0.0.1', '::1'];

const generateKeyPairAsync = promisify(generateKeyPair);

/** Issues a CA (or reuses the one in outDir), a server certificate and optionally a client certificate. */
export async function generateCertificates(opts: GenerateCertificatesOptions): Promise<GeneratedFiles> {
  const outDir = path.resolve(opts.outDir);
  const days = opts.days ?? DEFAULT_LEAF_VALIDITY_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_LEAF_VALIDITY_DAYS) {
    throw new RangeError(`days must be an integer from 1 to ${MAX_LEAF_VALIDITY_DAYS}, got ${String(days)}`);
  }
  const keyType = opts.keyType ?? 'rsa';
  const { dnsNames, ipAddresses } = subjectAltNames(opts.hosts, opts.ips);
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw new Error('at least one host or IP address is required for the server certificate');
  }
  const clientName = opts.client === undefined ? undefined : validateCommonName(opts.client, 'client');
  const clientUris = (opts.clientUris ?? []).map(validateUri);

  await fsp.mkdir(outDir, { recursive: true, mode: OUT_DIR_MODE });
  const files = {
    caCert: path.join(outDir, CERT_FILE_NAMES.caCert),
    caKey: path.join(outDir, CERT_FILE_NAMES.caKey),
    serverCert: path.join(outDir, CERT_FILE_NAMES.serverCert),
    serverKey: path.join(outDir, CERT_FILE_NAMES.serverKey),
    clientCert: path.join(outDir, CERT_FILE_NAMES.clientCert),
    clientKey: path.join(outDir, CERT_FILE_NAMES.clientKey),
  };

  const now = Date.now();
  const notBefore = new Date(now - CLOCK_SKEW_ALLOWANCE_MS);

  // Key pairs are generated concurrently, on libuv's thread pool.
  const leafKeys = Promise.all([newKeyPair(keyType), clientName === undefined ? undefined : newKeyPair(keyType)]);
  leafKeys.catch(() => undefined); // awaited below; this only prevents an unhandled rejection meanwhile
  let ca = await loadExistingCa(files.caCert, files.caKey, now);
  if (ca === undefined) {
    const keys = await newKeyPair(keyType);
    const name = [
      { oid: OID.organizationName, value: ORGANIZATION },
      { oid: OID.commonName, value: `sidecar local CA ${randomBytes(4).toString('hex')}` },
    ];
    const ski = keyIdentifier(keys.publicKey);
    const caName = nameToAsn1(name);
    const der = issue({
      serialHex: randomSerialHex(),
      notBefore,
      notAfter: new Date(notBefore.getTime() + DEFAULT_CA_VALIDITY_DAYS * DAY_MS),
      subject: caName,
      subjectPublicKey: keys.publicKey,
      issuer: { name: caName, privateKey: keys.privateKey, keyIdentifier: ski },
      extensions: [
        { name: 'basicConstraints', critical: true, cA: true, pathLenConstraint: 0 },
        { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true, digitalSignature: true },
        { name: 'subjectKeyIdentifier', value: octetString(ski) },
      ],
    });
    ca = { certPem: derToPem(der), privateKey: keys.privateKey, name: caName, keyIdentifier: ski, notAfter: undefined };
    await writeAtomic(files.caKey, exportKey(keys.privateKey), PRIVATE_KEY_MODE);
    await writeAtomic(files.caCert, ca.certPem, CERTIFICATE_MODE);
  }

  // A leaf that outlives its CA fails verification once the CA expires: cap it.
  const leafNotAfter = new Date(
    Math.min(notBefore.getTime() + days * DAY_MS, ca.notAfter?.getTime() ?? Number.POSITIVE_INFINITY),
  );

  const [serverKeys, clientKeys] = await leafKeys;
  const serverCn = dnsNames.find((n) => n.length <= 64) ?? ipAddresses[0] ?? 'sidecar server';
  const serverDer = issue({
    serialHex: randomSerialHex(),
    notBefore,
    notAfter: leafNotAfter,
    subject: nameToAsn1([
      { oid: OID.organizationName, value: ORGANIZATION },
      { oid: OID.commonName, value: serverCn },
    ]),
    subjectPublicKey: serverKeys.publicKey,
    issuer: ca,
    extensions: [
      ...leafExtensions(serverKeys.publicKey, ca.keyIdentifier),
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...dnsNames.map((value) => ({ type: 2, value })),
          ...ipAddresses.map((ip) => ({ type: 7, ip })),
        ],
      },
    ],
  });
  await writeAtomic(files.serverKey, exportKey(serverKeys.privateKey), PRIVATE_KEY_MODE);
  await writeAtomic(files.serverCert, derToPem(serverDer), CERTIFICATE_MODE);

  if (clientName !== undefined && clientKeys !== undefined) {
    const clientDer = issue({
      serialHex: randomSerialHex(),
      notBefore,
      notAfter: leafNotAfter,
      subject: nameToAsn1([
        { oid: OID.organizationName, value: ORGANIZATION },
        { oid: OID.commonName, value: clientName },
      ]),
      subjectPublicKey: clientKeys.publicKey,
      issuer: ca,
      extensions: [
        ...leafExtensions(clientKeys.publicKey, ca.keyIdentifier),
        { name: 'extKeyUsage', clientAuth: true },
        ...(clientUris.length > 0
          ? [{ name: 'subjectAltName', altNames: clientUris.map((value) => ({ type: 6, value })) }]
          : []),
      ],
    });
    await writeAtomic(files.clientKey, exportKey(clientKeys.privateKey), PRIVATE_KEY_MODE);
    await writeAtomic(files.clientCert, derToPem(clientDer), CERTIFICATE_MODE);
  }

  return {
    caCertPath: files.caCert,
    caKeyPath: files.caKey,
    serverCertPath: files.serverCert,
    serverKeyPath: files.serverKey,
    clientCertPath: clientName === undefined ? undefined : files.clientCert,
    clientKeyPath: clientName === undefined ? undefined : files.clientKey,
  };
}

export interface EnsureDemoCertificatesResult {
  /** false when server.crt and server.key already existed and nothing was written. */
  readonly generated: boolean;
  readonly serverCertPath: string;
  readonly serverKeyPath: string;
  readonly caCertPath: string;
  readonly files: GeneratedFiles | undefined;
}

/**
 * Generates demo certificates (localhost + a `demo-client` client certificate) unless
 * server.crt and server.key already exist in `dir`. Existing files are never replaced,
 * so a user's own certificates placed there win.
 */
export async function ensureDemoCertificates(
  dir: string,
  opts: { hosts?: readonly string[]; client?: string; keyType?: KeyType } = {},
): Promise<EnsureDemoCertificatesResult> {
  const outDir = path.resolve(dir);
  const serverCertPath = path.join(outDir, CERT_FILE_NAMES.serverCert);
  const serverKeyPath = path.join(outDir, CERT_FILE_NAMES.serverKey);
  const caCertPath = path.join(outDir, CERT_FILE_NAMES.caCert);
  if ((await exists(serverCertPath)) && (await exists(serverKeyPath))) {
    return { generated: false, serverCertPath, serverKeyPath, caCertPath, files: undefined };
  }
  const files = await generateCertificates({
    outDir,
    hosts: opts.hosts ?? ['localhost'],
    client: opts.client ?? 'demo-client',
    keyType: opts.keyType ?? 'rsa',
  });
  return { generated: true, serverCertPath, serverKeyPath, caCertPath, files };
}

// ---------------------------------------------------------------------------------------
// Names and SANs

function subjectAltNames(
  hosts: readonly string[],
  ips: readonly string[] | undefined,
): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const raw of hosts) {
    const host = raw.trim();
    // A bracketed IPv6 literal is how it appears in URLs; accept it.
    const unbracketed = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(unbracketed) !== 0) ipAddresses.push(unbracketed);
    else dnsNames.push(normaliseDnsName(host));
  }
  const loopback = dnsNames.includes('localhost') ? LOOPBACK_IPS : [];
  for (const ip of [...loopback, ...(ips ?? [])]) {
    if (isIP(ip) === 0) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
    ipAddresses.push(ip);
  }
  return { dnsNames: unique(dnsNames), ipAddresses: unique(ipAddresses) };
}

/** Lower-case ASCII (punycode) form; `*.` is allowed as the whole left-most label only. */
function normaliseDnsName(host: string): string {
  const lowered = host.toLowerCase().replace(/\.$/, '');
  const wildcard = lowered.startsWith('*.');
  const rest = wildcard ? lowered.slice(2) : lowered;
  const ascii = domainToASCII(rest);
  const label = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
  if (ascii === '' || ascii.length > 253 || !ascii.split('.').every((l) => label.test(l))) {
    throw new Error(`not a valid DNS name: ${JSON.stringify(host)}`);
  }
  return wildcard ? `*.${ascii}` : ascii;
}

function validateCommonName(value: string, what: string): string {
  const trimmed = value.trim();
  // X.520 ub-common-name: 64 characters.
  if (trimmed.length === 0 || trimmed.length > 64) {
    throw new Error(`${what} common name must be 1 to 64 characters, got ${JSON.stringify(value)}`);
  }
  return trimmed;
}

function validateUri(value: string): string {
  if (!URL.canParse(value)) throw new Error(`not a valid URI: ${JSON.stringify(value)}`);
  return value;
}

interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

/**
 * RDNSequence with one attribute per RDN, values as UTF8String (RFC 5280 §4.1.2.6).
 * Attributes go from the most general (O) to the most specific (CN), as X.500 orders them.
 */
function nameToAsn1(attributes: readonly NameAttribute[]): forge.asn1.Asn1 {
  const { asn1 } = forge;
  return asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.SEQUENCE,
    true,
    attributes.map((a) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(a.oid).getBytes()),
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(a.value)),
        ]),
      ]),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Issuing

interface Issuer {
  readonly name: forge.asn1.Asn1;
  readonly privateKey: KeyObject;
  /** Binary string; becomes the authorityKeyIdentifier of issued certificates. */
  readonly keyIdentifier: string | undefined;
}

interface LoadedCa extends Issuer {
  readonly certPem: string;
  readonly notAfter: Date | undefined;
}

/**
 * Extension descriptions in node-forge's `setExtensions` format. forge fills in the
 * encodings (bit strings, SAN IP bytes, OIDs); `value`, when given, is used as is.
 */
type ExtensionSpec = Record<string, unknown> & { readonly name: string };

interface IssueRequest {
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: forge.asn1.Asn1;
  readonly subjectPublicKey: KeyObject;
  readonly issuer: Issuer;
  readonly extensions: readonly ExtensionSpec[];
}

/** `pki.certificateExtensionsToAsn1` exists in node-forge but is missing from its type definitions. */
interface ForgePkiExtensions {
  certificateExtensionsToAsn1(extensions: readonly unknown[]): forge.asn1.Asn1;
}

/** Builds the TBSCertificate with forge's ASN.1 layer and signs its DER with node:crypto. */
function issue(req: IssueRequest): Buffer {
  const { asn1 } = forge;
  const algorithm = signatureAlgorithm(req.issuer.privateKey);

  // forge derives extension encodings; the holder certificate is only a vehicle for that.
  const holder = forge.pki.createCertificate();
  holder.setExtensions(req.extensions.map((e) => ({ ...e })));
  const extensions = (forge.pki as unknown as ForgePkiExtensions).certificateExtensionsToAsn1(holder.extensions);

  const spkiDer = req.subjectPublicKey.export({ type: 'spki', format: 'der' });
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    // version: v3 (2)
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(2).getBytes()),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, forge.util.hexToBytes(req.serialHex)),
    algorithm.identifier(),
    req.issuer.name,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [timeToAsn1(req.notBefore), timeToAsn1(req.notAfter)]),
    req.subject,
    asn1.fromDer(spkiDer.toString('binary')),
    extensions,
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  // RSA: PKCS#1 v1.5; EC: DER-encoded ECDSA signature. Both are what X.509 expects.
  const signature = sign('sha256', tbsDer, req.issuer.privateKey);

  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm.identifier(),
    // BIT STRING: leading byte = 0 unused bits.
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\u0000${signature.toString('binary')}`),
  ]);
  return Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
}

function signatureAlgorithm(key: KeyObject): { identifier(): forge.asn1.Asn1 } {
  const { asn1 } = forge;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      // sha256WithRSAEncryption carries an explicit NULL parameter (RFC 4055 §5).
      return {
        identifier: () =>
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
            asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(OID.sha256WithRSAEncryption).getBytes()),
            asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
          ]),
      };
    case 'ec':
      // ecdsa-with-SHA256 has no parameters at all (RFC 5758 §3.2).
      return {
        identifier: () =>
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
            asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(OID.ecdsaWithSha256).getBytes()),
          ]),
      };
    default:
      throw new Error(`unsupported CA key type ${String(key.asymmetricKeyType)}: use an RSA or EC key`);
  }
}

function leafExtensions(publicKey: KeyObject, authorityKeyId: string | undefined): ExtensionSpec[] {
  const { asn1 } = forge;
  const extensions: ExtensionSpec[] = [
    { name: 'basicConstraints', critical: true, cA: false },
    // keyEncipherment only makes sense for RSA keys (RSA key transport); ECDSA keys only sign.
    publicKey.asymmetricKeyType === 'rsa'
      ? { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true }
      : { name: 'keyUsage', critical: true, digitalSignature: true },
    { name: 'subjectKeyIdentifier', value: octetString(keyIdentifier(publicKey)) },
  ];
  if (authorityKeyId !== undefined) {
    extensions.push({
      name: 'authorityKeyIdentifier',
      value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, authorityKeyId),
      ]),
    });
  }
  return extensions;
}

/**
 * RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. SHA-1 is only an
 * identifier here, not a security property.
 */
function keyIdentifier(publicKey: KeyObject): string {
  let bits: Buffer;
  if (publicKey.asymmetricKeyType === 'rsa') {
    bits = publicKey.export({ type: 'pkcs1', format: 'der' });
  } else if (publicKey.asymmetricKeyType === 'ec') {
    const jwk = publicKey.export({ format: 'jwk' });
    if (jwk.x === undefined || jwk.y === undefined) throw new Error('EC public key without coordinates');
    // Uncompressed point: 0x04 || X || Y, as node:crypto exports it in SPKI.
    bits = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  } else {
    throw new Error(`unsupported key type ${String(publicKey.asymmetricKeyType)}`);
  }
  return createHash('sha1').update(bits).digest().toString('binary');
}

function octetString(bytes: string): forge.asn1.Asn1 {
  return forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, bytes);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function timeToAsn1(date: Date): forge.asn1.Asn1 {
  const { asn1 } = forge;
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

/**
 * 16 random bytes as a positive DER INTEGER: the top bit is cleared (positive) and the
 * next one set, so the encoding is exactly 16 bytes with no leading zero (126 random bits).
 */
function randomSerialHex(): string {
  const bytes = randomBytes(SERIAL_NUMBER_BYTES);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

async function newKeyPair(keyType: KeyType): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return keyType === 'ec'
    ? generateKeyPairAsync('ec', { namedCurve: 'prime256v1' })
    : generateKeyPairAsync('rsa', { modulusLength: DEFAULT_RSA_MODULUS_BITS });
}

function exportKey(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function derToPem(der: Buffer): string {
  // Parsing it back also proves the DER is a well-formed certificate.
  return new X509Certificate(der).toString();
}

// ---------------------------------------------------------------------------------------
// Reusing an existing CA

async function loadExistingCa(certPath: string, keyPath: string, now: number): Promise<LoadedCa | undefined> {
  const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (!hasCert && !hasKey) return undefined;
  // Never overwrite half a CA: clients may already trust the certificate.
  if (!hasCert || !hasKey) {
    throw new Error(
      `found ${hasCert ? certPath : keyPath} without ${hasCert ? keyPath : certPath}: ` +
        'restore the missing file or delete both to create a new CA',
    );
  }
  const certPem = await fsp.readFile(certPath, 'utf8');
  const x509 = new X509Certificate(certPem);
  const privateKey = createPrivateKey(await fsp.readFile(keyPath));
  if (!x509.ca) throw new Error(`${certPath} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`${keyPath} is not the private key of ${certPath}`);
  const notAfter = new Date(x509.validTo);
  if (notAfter.getTime() <= now) throw new Error(`the CA in ${certPath} expired on ${notAfter.toISOString()}`);
  const { subject, keyIdentifier: ski } = readSubjectAndKeyId(x509.raw);
  return { certPem, privateKey, name: subject, keyIdentifier: ski, notAfter };
}

/**
 * The CA's subject Name exactly as encoded (issuer names are compared byte-wise after
 * canonicalisation, so re-encoding risks a mismatch) and its own subjectKeyIdentifier
 * (an authorityKeyIdentifier that differs from it makes OpenSSL skip the CA).
 */
function readSubjectAndKeyId(der: Buffer): { subject: forge.asn1.Asn1; keyIdentifier: string | undefined } {
  const { asn1 } = forge;
  const cert = asn1.fromDer(der.toString('binary'));
  const tbs = children(cert)[0];
  const fields = tbs === undefined ? [] : children(tbs);
  const first = fields[0];
  const offset = first !== undefined && first.tagClass === asn1.Class.CONTEXT_SPECIFIC && first.type === 0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (subject === undefined) throw new Error('malformed CA certificate');

  let ski: string | undefined;
  const extContainer = fields.find((f) => f.tagClass === asn1.Class.CONTEXT_SPECIFIC && Number(f.type) === 3);
  const extList = extContainer === undefined ? [] : children(children(extContainer)[0]);
  for (const ext of extList) {
    const parts = children(ext);
    const oid = parts[0];
    const value = parts[parts.length - 1];
    if (oid === undefined || value === undefined || typeof oid.value !== 'string' || typeof value.value !== 'string') continue;
    if (asn1.derToOid(oid.value) !== OID.subjectKeyIdentifier) continue;
    const inner = asn1.fromDer(value.value);
    if (typeof inner.value === 'string') ski = inner.value;
  }
  return { subject, keyIdentifier: ski };
}

function children(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  return node !== undefined && Array.isArray(node.value) ? node.value : [];
}

// ---------------------------------------------------------------------------------------
// Files

async function writeAtomic(file: string, contents: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, contents, { mode, flag: 'wx' });
    // The mode given at creation is reduced by the umask; the key must be 0600 regardless.
    await fsp.chmod(tmp, mode);
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
