import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { TlsConfig } from '../../src/config/types';
import {
  escapeRfc4514Value,
  formatForwardedClientCert,
  loadTlsMaterial,
  parseSubjectAltName,
  rfc2253Subject,
  TLS_CIPHERS,
  TlsConfigError,
  TlsContextProvider,
  unescapeDnValue,
} from '../../src/tls/context';
import { issueServerCertificate, makeTestPki, runOpenssl } from '../helpers/certs';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

t.test('loadTlsMaterial reads and validates every file', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const sniCert = await issueServerCertificate(dir, path.join(dir, 'api'), ['api.example.com']);
  const config = pki.tlsConfig({ mtls: true, sni: [{ serverNames: ['API.Example.com.'], certPath: sniCert.certPath, keyPath: sniCert.keyPath }] });

  const material = loadTlsMaterial(config);
  t.equal(material.defaultCertificate.leaf.serialNumber.toUpperCase(), pki.serverSerial);
  t.same(material.sni[0]?.serverNames, ['api.example.com'], 'server names are normalised');
  t.equal(material.clientCa?.certificates.length, 1);
  t.match(material.sha256, /^[0-9a-f]{64}$/);
  t.equal(loadTlsMaterial(config).sha256, material.sha256, 'same files, same hash');
});

t.test('TlsConfigError names the broken file', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const base = pki.tlsConfig({ mtls: true });
  const missing = path.join(dir, 'nope.crt');
  const garbage = path.join(dir, 'garbage.pem');
  await fsp.writeFile(garbage, 'hello, not a certificate\n');
  const badBlock = path.join(dir, 'bad-block.crt');
  await fsp.writeFile(badBlock, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const encrypted = path.join(dir, 'encrypted.key');
  await fsp.writeFile(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');

  const cases: Array<[string, TlsConfig, string, string, RegExp]> = [
    ['missing cert', { ...base, certPath: missing }, 'cert', missing, /file not found/],
    ['missing key', { ...base, keyPath: missing }, 'key', missing, /file not found/],
    ['directory as cert', { ...base, certPath: dir }, 'cert', dir, /directory/],
    ['cert not PEM', { ...base, certPath: garbage }, 'cert', garbage, /not a PEM certificate/],
    ['key not PEM', { ...base, keyPath: garbage }, 'key', garbage, /not a PEM private key/],
    ['cert and key swapped', { ...base, certPath: pki.serverKeyPath, keyPath: pki.serverCertPath }, 'cert', pki.serverKeyPath, /swapped/],
    ['invalid certificate body', { ...base, certPath: badBlock }, 'cert', badBlock, /not a valid certificate/],
    ['encrypted key', { ...base, keyPath: encrypted }, 'key', encrypted, /encrypted/],
    ['key of another certificate', { ...base, keyPath: pki.clientKeyPath }, 'key', pki.clientKeyPath, /does not match the certificate .*server\.crt/],
    ['missing client CA', { ...base, clientCaPath: missing }, 'clientCa', missing, /file not found/],
    ['client CA not PEM', { ...base, clientCaPath: garbage }, 'clientCa', garbage, /not a PEM certificate/],
    ['client CA with a broken block', { ...base, clientCaPath: badBlock }, 'clientCa', badBlock, /not valid/],
    [
      'sni key mismatch',
      { ...base, sni: [{ serverNames: ['a.example.com'], certPath: pki.serverCertPath, keyPath: pki.clientKeyPath }] },
      'sni[0].key',
      pki.clientKeyPath,
      /does not match/,
    ],
    [
      'sni cert missing',
      { ...base, sni: [{ serverNames: ['a.example.com'], certPath: missing, keyPath: pki.serverKeyPath }] },
      'sni[0].cert',
      missing,
      /file not found/,
    ],
  ];
  for (const [name, config, field, file, problem] of cases) {
    t.test(name, async (t) => {
      const err = thrown(() => loadTlsMaterial(config));
      t.type(err, TlsConfigError);
      if (!(err instanceof TlsConfigError)) return;
      t.equal(err.field, field, `field ${field}`);
      t.equal(err.file, file, 'names the file');
      t.ok(err.message.includes(file), `message names the file: ${err.message}`);
      t.match(err.message, problem);
    });
  }
  t.test('the provider constructor throws the same error', async (t) => {
    const err = thrown(() => new TlsContextProvider({ ...base, keyPath: pki.clientKeyPath }));
    t.type(err, TlsConfigError);
    t.match(err, { field: 'key', file: pki.clientKeyPath });
  });
});

t.test('SNI selection: exact names, then one-label wildcards, then the default', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const api = await issueServerCertificate(dir, path.join(dir, 'api'), ['api.example.com']);
  const wild = await issueServerCertificate(dir, path.join(dir, 'wild'), ['*.example.com']);
  const provider = new TlsContextProvider(
    pki.tlsConfig({
      sni: [
        { serverNames: ['*.example.com'], certPath: wild.certPath, keyPath: wild.keyPath },
        { serverNames: ['api.example.com'], certPath: api.certPath, keyPath: api.keyPath },
      ],
    }),
  );
  const apiCtx = provider.contextFor('api.example.com');
  const wildCtx = provider.contextFor('www.example.com');
  const defaultCtx = provider.contextFor(undefined);
  t.not(apiCtx, wildCtx, 'an exact name beats a wildcard listed before it');
  t.not(wildCtx, defaultCtx);
  t.equal(provider.contextFor('API.EXAMPLE.COM.'), apiCtx, 'case and trailing dot do not matter');
  t.equal(provider.contextFor('x.example.com'), wildCtx);
  t.equal(provider.contextFor('a.b.example.com'), defaultCtx, 'a wildcard covers one label only');
  t.equal(provider.contextFor('example.com'), defaultCtx, 'a wildcard does not cover the bare domain');
  t.equal(provider.contextFor('unknown.test'), defaultCtx);
  t.equal(provider.contextFor(''), defaultCtx);
});

t.test('server options', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const plain = new TlsContextProvider(pki.tlsConfig()).serverOptions();
  t.equal(plain.minVersion, 'TLSv1.2');
  t.equal(plain.maxVersion, 'TLSv1.3');
  t.equal(plain.honorCipherOrder, true);
  t.same(plain.ALPNProtocols, ['h2', 'http/1.1']);
  t.equal(plain.requestCert, false);
  t.type(plain.SNICallback, 'function');
  const mtls = new TlsContextProvider(pki.tlsConfig({ mtls: true })).serverOptions({ alpnProtocols: ['http/1.1'] });
  t.equal(mtls.requestCert, true);
  t.equal(mtls.rejectUnauthorized, true);
  t.same(mtls.ALPNProtocols, ['http/1.1']);
  t.ok(mtls.ca, 'the client CA is the trust store');

  for (const cipher of TLS_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_'))) {
    t.match(cipher, /^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/, `${cipher}: ECDHE + AEAD`);
  }
  const listed = await runOpenssl(['ciphers', '-s', '-tls1_2', TLS_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':')]);
  t.equal(listed.code, 0, 'OpenSSL knows every TLS 1.2 cipher');
});

t.test('reload cannot switch mTLS on or off', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir);
  const provider = new TlsContextProvider(pki.tlsConfig());
  const result = provider.reload(pki.tlsConfig({ mtls: true }));
  t.equal(result.ok, false);
  if (!result.ok) t.match(result.error.message, /listener restart/);
  const same = provider.reload();
  t.same(same, { ok: true, changed: false }, 'a reload of unchanged files reports no change');
});

t.test('x-forwarded-client-cert formatting', async (t) => {
  const dir = t.testdir();
  const pki = await makeTestPki(dir, {
    client: 'ACME, "Ops"',
    clientUris: ['spiffe://example.org/ns/default/sa/web', 'https://id.example/?a=1,2'],
  });
  const cert = new X509Certificate(pki.clientCert);
  const hash = createHash('sha256').update(cert.raw).digest('hex');
  t.equal(
    formatForwardedClientCert(cert),
    // RFC 4514 escapes `,` and `"` in the DN; the XFCC quoted-string then escapes every `\` and `"`
    // once more (RFC 9110 §5.6.4), so a reader that undoes the quoting gets the RFC 4514 DN back.
    String.raw`Hash=${hash};Subject="CN=ACME\\, \\\"Ops\\\",O=sidecar";` +
      'URI=spiffe://example.org/ns/default/sa/web;URI="https://id.example/?a=1,2"',
  );

  const plain = await makeTestPki(path.join(dir, 'plain'));
  const plainCert = new X509Certificate(plain.clientCert);
  t.equal(
    formatForwardedClientCert(plainCert),
    `Hash=${createHash('sha256').update(plainCert.raw).digest('hex')};Subject="CN=test-client,O=sidecar"`,
    'no URI/DNS pairs when the certificate has no such SANs',
  );
});

t.test('rfc2253Subject and parseSubjectAltName', async (t) => {
  t.equal(rfc2253Subject('C=US\nO=Example\nCN=web'), 'CN=web,O=Example,C=US');
  t.equal(rfc2253Subject('C=US\nOU=a + CN=b'), 'OU=a+CN=b,C=US', 'multi-valued RDN');
  t.equal(rfc2253Subject('CN=a\\, b'), 'CN=a\\, b', 'escapes are kept');
  t.equal(rfc2253Subject('CN=a \\+ b'), 'CN=a \\+ b', 'an escaped plus is a character, not an RDN separator');
  t.equal(rfc2253Subject('CN=x\\  + O=y'), 'CN=x\\ +O=y', 'a trailing space before the separator stays escaped');
  t.same(parseSubjectAltName(undefined), []);
  t.same(parseSubjectAltName('DNS:a.example, IP Address:127.0.0.1, URI:spiffe://x/y'), [
    { type: 'DNS', value: 'a.example' },
    { type: 'IP Address', value: '127.0.0.1' },
    { type: 'URI', value: 'spiffe://x/y' },
  ]);
  t.same(parseSubjectAltName('URI:"http://a/?x=1\\u002c2", DNS:b'), [
    { type: 'URI', value: 'http://a/?x=1,2' },
    { type: 'DNS', value: 'b' },
  ]);
});

t.test('rfc2253Subject escapes values as RFC 4514 says, whatever escaping Node printed', async (t) => {
  // Each special of RFC 4514 §2.4, printed by Node as OpenSSL escapes it (or as a hex pair).
  t.equal(rfc2253Subject('CN=\\#a\\,b\\"c\\\\d\\<e\\>f\\;g'), 'CN=\\#a\\,b\\"c\\\\d\\<e\\>f\\;g');
  t.equal(rfc2253Subject('CN=\\2C\\2B\\3B'), 'CN=\\,\\+\\;', 'hex-escaped specials are escaped by character');
  t.equal(rfc2253Subject('CN=\\ lead'), 'CN=\\ lead', 'a leading space');
  t.equal(rfc2253Subject('CN=trail\\ '), 'CN=trail\\ ', 'a trailing space');
  t.equal(rfc2253Subject('CN=in side'), 'CN=in side', 'an inner space is not escaped');
  t.equal(rfc2253Subject('CN=a#b'), 'CN=a#b', 'an inner # is not escaped');
  t.equal(rfc2253Subject('CN=nul\\00x'), 'CN=nul\\00x', 'NUL as \\00');
  t.equal(rfc2253Subject('CN=line\\0Abreak'), 'CN=line\\0Abreak', 'control characters stay hex-escaped');
  t.equal(rfc2253Subject('CN=caf\\C3\\A9'), 'CN=café', 'UTF-8 hex pairs decode to text');
  t.equal(rfc2253Subject('CN=café'), 'CN=café');
  t.equal(escapeRfc4514Value('#, x +"\\<>; '), '\\#\\, x \\+\\"\\\\\\<\\>\\;\\ ');
  t.equal(escapeRfc4514Value('\0'), '\\00');
  t.equal(escapeRfc4514Value(' '), '\\ ', 'a lone space is escaped once');
  t.equal(unescapeDnValue('\\#a\\2Cb'), '#a,b');
});

t.test('XFCC Subject of a real certificate with RFC 4514 specials', async (t) => {
  const dir = t.testdir();
  const key = path.join(dir, 'k.pem');
  const cert = path.join(dir, 'c.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', String.raw`/CN=#a\,b;c/O=x\+y "q"/OU= lead`], { stdio: 'ignore' });
  const x509 = new X509Certificate(readFileSync(cert));
  t.equal(rfc2253Subject(x509.subject), String.raw`OU=\ lead,O=x\+y \"q\",CN=\#a\,b\;c`);
  t.ok(formatForwardedClientCert(x509).endsWith(String.raw`;Subject="OU=\\ lead,O=x\\+y \\\"q\\\",CN=\\#a\\,b\\;c"`),
    'backslashes and quotes are escaped again inside the quoted Subject');
});
