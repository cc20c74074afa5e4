/** The gRPC wire details the proxy reads and writes (src/core/grpc.ts). */
import t from 'tap';
import {
  encodeGrpcMessage,
  formatGrpcTimeout,
  grpcMethodOf,
  grpcRetryOnName,
  grpcStatusInRawHeaders,
  isGrpcRequest,
  parseGrpcStatus,
  parseGrpcTimeout,
  takeGrpcStatusFields,
} from '../../src/core/grpc';
import { ERROR_CODES, grpcStatusOf } from '../../src/core/errors';

t.test('grpc-timeout: every unit, and malformed values ignored', async (t) => {
  t.equal(parseGrpcTimeout('2H'), 7_200_000);
  t.equal(parseGrpcTimeout('3M'), 180_000);
  t.equal(parseGrpcTimeout('5S'), 5_000);
  t.equal(parseGrpcTimeout('250m'), 250);
  t.equal(parseGrpcTimeout('1500u'), 1.5);
  t.equal(parseGrpcTimeout('2000000n'), 2);
  for (const bad of ['', '5', 's', '5s', '123456789S', '-1S', '1.5S', ' 5S', '5S ']) t.equal(parseGrpcTimeout(bad), undefined, JSON.stringify(bad));
  t.equal(parseGrpcTimeout(undefined), undefined);
  t.equal(parseGrpcTimeout(['5S']), undefined, 'a repeated header is not trusted');
  t.equal(formatGrpcTimeout(1234.2), '1235m', 'rounded up');
  t.equal(formatGrpcTimeout(0), '1m', 'never 0');
  t.equal(formatGrpcTimeout(-5), '1m');
  t.equal(formatGrpcTimeout(1e12), '99999999m', 'at most 8 digits');
});

t.test('grpc-message is percent-encoded UTF-8; CR/LF cannot pass', async (t) => {
  t.equal(encodeGrpcMessage('plain text'), 'plain text');
  t.equal(encodeGrpcMessage('100% sure'), '100%25 sure');
  t.equal(encodeGrpcMessage('a\r\nb'), 'a%0D%0Ab');
  t.equal(encodeGrpcMessage('café'), 'caf%C3%A9');
});

t.test('content types, statuses and method names', async (t) => {
  for (const type of ['application/grpc', 'application/grpc+proto', 'Application/GRPC-web', 'application/grpc;charset=x']) t.ok(isGrpcRequest({ headers: { 'content-type': type } }), type);
  for (const type of [undefined, 'application/json', 'application/grp']) t.notOk(isGrpcRequest({ headers: { 'content-type': type } }), String(type));
  t.equal(parseGrpcStatus('14'), 14);
  t.equal(parseGrpcStatus(['0', '1']), 0);
  for (const bad of ['', 'x', '123', '-1']) t.equal(parseGrpcStatus(bad), undefined, JSON.stringify(bad));
  t.equal(grpcStatusInRawHeaders([Buffer.from('content-type'), Buffer.from('application/grpc'), Buffer.from('Grpc-Status'), Buffer.from('8')]), 8);
  t.equal(grpcStatusInRawHeaders([Buffer.from('content-type'), Buffer.from('application/grpc')]), undefined);
  t.equal(grpcRetryOnName(14), 'unavailable');
  t.equal(grpcRetryOnName(0), undefined);
  t.equal(grpcMethodOf('/pkg.Svc/Get?x=1'), 'pkg.Svc/Get');
});

t.test('takeGrpcStatusFields moves the status fields out of a header list', async (t) => {
  const headers = ['content-type', 'application/grpc', 'grpc-status', '14', 'x-a', '1', 'Grpc-Message', 'down', 'grpc-status-details-bin', 'AAA'];
  t.same(takeGrpcStatusFields(headers), { 'grpc-status': '14', 'grpc-message': 'down', 'grpc-status-details-bin': 'AAA' });
  t.same(headers, ['content-type', 'application/grpc', 'x-a', '1']);
  const plain = ['content-type', 'application/grpc'];
  t.equal(takeGrpcStatusFields(plain), undefined);
  t.same(plain, ['content-type', 'application/grpc']);
});

t.test('every error code has a gRPC status', async (t) => {
  for (const code of ERROR_CODES) {
    const status = grpcStatusOf(code);
    t.ok(Number.isInteger(status) && status > 0 && status <= 16, `${code} → ${status}`);
  }
  t.equal(grpcStatusOf('NO_ROUTE'), 12);
  t.equal(grpcStatusOf('UPSTREAM_TIMEOUT'), 4);
  t.equal(grpcStatusOf('OVERLOADED'), 8);
  t.equal(grpcStatusOf('CIRCUIT_OPEN'), 14);
});
