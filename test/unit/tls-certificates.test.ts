import { X509Certificate } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ensureDemoCertificates, generateCertificates, MAX_LEAF_VALIDITY_DAYS } from '../../src/tls/certificates';
import { parseSubjectAltName } from '../../src/tls/context';
import { runOpenssl } from '../helpers/certs';

const DAY_MS = 24 * 60 * 60 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

async function readCert(file: string): Promise<X509Certificate> {
  return new X509Certificate(await fsp.readFile(file));
}

async function mode(file: string): Promise<number> {
  return (await fsp.stat(file)).mode & 0o777;
}

function validityDays(cert: X509Certificate): number {
  return (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / DAY_MS;
}

for (const keyType of ['rsa', 'ec'] as const) {
  t.test(`${keyType}: CA, server and client certificates`, async (t) => {
    const dir = path.join(t.testdir(), 'certs');
    const files = await generateCertificates({
      outDir: dir,
      hosts: ['localhost', 'api.example.com', '*.example.com', '192.0.2.10'],
      ips: ['10.1.2.3'],
      client: 'test-client',
      clientUris: ['spiffe://example.org/ns/default/sa/test'],
      keyType,
    });

    t.same(
      (await fsp.readdir(dir)).sort(),
      ['ca.crt', 'ca.key', 'client.crt', 'client.key', 'server.crt', 'server.key'],
      'writes exactly the six files',
    );
    for (const key of [files.caKeyPath, files.serverKeyPath, files.clientKeyPath ?? '']) {
      t.equal(await mode(key), 0o600, `${path.basename(key)} is 0600`);
      t.match(await fsp.readFile(key, 'utf8'), /^-----BEGIN PRIVATE KEY-----/, `${path.basename(key)} is PKCS#8 PEM`);
    }
    for (const crt of [files.caCertPath, files.serverCertPath, files.clientCertPath ?? '']) {
      t.equal(await mode(crt), 0o644, `${path.basename(crt)} is 0644`);
    }

    const verify = await runOpenssl(['verify', '-CAfile', files.caCertPath, files.serverCertPath, files.clientCertPath ?? '']);
    t.equal(verify.code, 0, `openssl verify succeeds: ${verify.stdout}${verify.stderr}`);
    t.match(verify.stdout, /server\.crt: OK/);
    t.match(verify.stdout, /client\.crt: OK/);
    const purpose = await runOpenssl([
      'verify', '-CAfile', files.caCertPath, '-purpose', 'sslserver', '-verify_hostname', 'api.example.com', files.serverCertPath,
    ]);
    t.equal(purpose.code, 0, 'valid as a TLS server certificate for api.example.com');
    const clientPurpose = await runOpenssl(['verify', '-CAfile', files.caCertPath, '-purpose', 'sslclient', files.clientCertPath ?? '']);
    t.equal(clientPurpose.code, 0, 'valid as a TLS client certificate');
    const wrongPurpose = await runOpenssl(['verify', '-CAfile', files.caCertPath, '-purpose', 'sslclient', files.serverCertPath]);
    t.not(wrongPurpose.code, 0, 'the server certificate is not a client certificate');

    const text = await runOpenssl(['x509', '-in', files.serverCertPath, '-noout', '-text']);
    t.match(text.stdout, keyType === 'rsa' ? /Signature Algorithm: sha256WithRSAEncryption/ : /Signature Algorithm: ecdsa-with-SHA256/);
    t.match(text.stdout, keyType === 'rsa' ? /Public-Key: \(2048 bit\)/ : /NIST CURVE: P-256/);

    const ca = await readCert(files.caCertPath);
    const server = await readCert(files.serverCertPath);
    const client = await readCert(files.clientCertPath ?? '');
    t.equal(ca.ca, true, 'CA has basicConstraints CA:TRUE');
    t.equal(server.ca, false);
    t.equal(client.ca, false);
    t.ok(server.checkIssued(ca) && server.verify(ca.publicKey), 'server certificate is signed by the CA');
    t.ok(client.checkIssued(ca) && client.verify(ca.publicKey), 'client certificate is signed by the CA');
    t.equal(server.publicKey.asymmetricKeyType, keyType);

    const sans = parseSubjectAltName(server.subjectAltName);
    t.same(
      sans.filter((s) => s.type === 'DNS').map((s) => s.value),
      ['localhost', 'api.example.com', '*.example.com'],
      'DNS SANs are the hosts',
    );
    t.same(
      sans.filter((s) => s.type === 'IP Address').map((s) => s.value),
      ['192.0.2.10', '127.0.0.1', '0:0:0:0:0:0:0:1', '10.1.2.3'],
      'IP SANs: IP-literal hosts, loopback for localhost, then ips',
    );
    t.same(parseSubjectAltName(client.subjectAltName), [{ type: 'URI', value: 'spiffe://example.org/ns/default/sa/test' }]);

    t.same(server.keyUsage, [SERVER_AUTH], 'server: extKeyUsage serverAuth');
    t.same(client.keyUsage, [CLIENT_AUTH], 'client: extKeyUsage clientAuth');
    t.ok(validityDays(server) <= MAX_LEAF_VALIDITY_DAYS, `server validity ${validityDays(server)} days <= 397`);
    t.ok(validityDays(server) > MAX_LEAF_VALIDITY_DAYS - 1, 'default validity is 397 days');
    t.ok(Date.parse(server.validFrom) <= Date.now(), 'already valid');
    t.ok(validityDays(ca) > 3000, 'the CA lives for years');

    for (const cert of [ca, server, client]) {
      t.match(cert.serialNumber, /^[0-7][0-9A-F]{31}$/i, '16-byte positive serial');
    }
    t.not(server.serialNumber, client.serialNumber);
    t.match(server.subject, /CN=localhost/);
    t.match(client.subject, /CN=test-client/);
  });
}

t.test('reuses an existing CA in outDir', async (t) => {
  const dir = t.testdir();
  const first = await generateCertificates({ outDir: dir, hosts: ['localhost'] });
  const caBefore = await fsp.readFile(first.caCertPath);
  const serverBefore = await readCert(first.serverCertPath);

  const second = await generateCertificates({ outDir: dir, hosts: ['localhost', 'more.example.com'], keyType: 'ec' });
  t.same(await fsp.readFile(second.caCertPath), caBefore, 'ca.crt is unchanged');
  const serverAfter = await readCert(second.serverCertPath);
  t.not(serverAfter.serialNumber, serverBefore.serialNumber, 'a new server certificate');
  t.match(serverAfter.subjectAltName ?? '', /DNS:more\.example\.com/);
  const verify = await runOpenssl(['verify', '-CAfile', second.caCertPath, second.serverCertPath]);
  t.equal(verify.code, 0, 'the new certificate verifies against the old CA');
});

t.test('refuses half a CA', async (t) => {
  const dir = t.testdir();
  const files = await generateCertificates({ outDir: dir, hosts: ['localhost'] });
  await fsp.rm(files.caKeyPath);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['localhost'] }), /ca\.crt without .*ca\.key/);
});

t.test('validates its inputs', async (t) => {
  const dir = t.testdir();
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['localhost'], days: 398 }), RangeError);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['localhost'], days: 0 }), RangeError);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['bad host!'] }), /not a valid DNS name/);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['a.*.example.com'] }), /not a valid DNS name/);
  await t.rejects(generateCertificates({ outDir: dir, hosts: [] }), /at least one host/);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['localhost'], ips: ['not-an-ip'] }), /not an IP address/);
  await t.rejects(generateCertificates({ outDir: dir, hosts: ['localhost'], client: 'x'.repeat(65) }), /1 to 64/);
});

t.test('shorter validity and IP-only certificates', async (t) => {
  const dir = t.testdir();
  const files = await generateCertificates({ outDir: dir, hosts: ['127.0.0.1'], days: 30 });
  const server = await readCert(files.serverCertPath);
  t.ok(Math.abs(validityDays(server) - 30) < 1, '30 days');
  t.equal(server.subjectAltName, 'IP Address:127.0.0.1');
  t.equal(files.clientCertPath, undefined, 'no client certificate unless asked');
});

t.test('ensureDemoCertificates generates once', async (t) => {
  const dir = path.join(t.testdir(), 'demo');
  const first = await ensureDemoCertificates(dir);
  t.equal(first.generated, true);
  const cert = await fsp.readFile(first.serverCertPath);
  t.ok(first.files?.clientCertPath, 'a demo client certificate for trying mTLS');

  const second = await ensureDemoCertificates(dir);
  t.equal(second.generated, false, 'existing certificates are kept');
  t.same(await fsp.readFile(second.serverCertPath), cert);
});
