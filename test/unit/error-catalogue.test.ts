/**
 * The error catalogue is one table per code (status, message, flag, failure kind); the status
 * and message maps, the response flags and the upstream error map are read from it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ERRORS, ERROR_CODES, ERROR_MESSAGES, ERROR_STATUS, SidecarError, type AttemptFailureKind, type ErrorCode } from '../../src/core/errors';
import { RESPONSE_FLAGS, responseFlags } from '../../src/telemetry/response-flags';
import { classifyUpstreamError } from '../../src/upstream/error-map';

const README = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

/** `CODE → status` from the README table "Errors the sidecar answers itself". */
function readmeStatuses(): Map<string, number> {
  const start = README.indexOf('\n## Errors the sidecar answers itself\n');
  const end = README.indexOf('\n## ', start + 1);
  const rows = new Map<string, number>();
  for (const match of README.slice(start, end).matchAll(/^\| ([A-Z_]+) \| (\d{3}) \|/gm)) rows.set(match[1], Number(match[2]));
  return rows;
}

t.test('every code has a status, a message and a flag (a known response flag, or none on purpose)', async (t) => {
  t.ok(ERROR_CODES.length >= 15, `${ERROR_CODES.length} codes`);
  for (const code of ERROR_CODES) {
    const facts = ERRORS[code];
    t.ok(Number.isInteger(facts.status) && facts.status >= 400 && facts.status <= 599, `${code}: status ${facts.status}`);
    t.ok(facts.message.length > 0, `${code}: a message`);
    t.ok('flag' in facts, `${code}: the flag is stated`);
    if (facts.flag !== null) t.ok(facts.flag in RESPONSE_FLAGS, `${code}: ${facts.flag} is a response flag`);
  }
  t.same(
    ERROR_CODES.filter((code) => ERRORS[code].flag === null),
    ['DRAINING', 'ADMIN_FORBIDDEN'],
    'only the drain answer and the admin refusal carry no flag',
  );
});

t.test('the statuses are the README table, row for row', async (t) => {
  const readme = readmeStatuses();
  t.same([...readme.keys()].sort(), [...ERROR_CODES].sort(), 'the README lists every code and no other');
  for (const code of ERROR_CODES) t.equal(readme.get(code), ERRORS[code].status, `${code}`);
});

t.test('ERROR_STATUS, ERROR_MESSAGES and SidecarError read the table', async (t) => {
  for (const code of ERROR_CODES) {
    t.equal(ERROR_STATUS[code], ERRORS[code].status, `${code} status`);
    t.equal(ERROR_MESSAGES[code], ERRORS[code].message, `${code} message`);
    const error = new SidecarError(code);
    t.equal(error.status, ERRORS[code].status);
    t.equal(error.message, ERRORS[code].message);
  }
  t.same(Object.keys(ERROR_STATUS), ERROR_CODES);
  t.same(Object.keys(ERROR_MESSAGES), ERROR_CODES);
});

t.test('each failure kind belongs to exactly one code', async (t) => {
  const kinds: AttemptFailureKind[] = ['connect-failure', 'reset', 'timeout', 'protocol-error', 'request-body'];
  for (const kind of kinds) {
    t.equal(ERROR_CODES.filter((code) => ERRORS[code].failureKind === kind).length, 1, kind);
  }
});

t.test('the response flag of a sidecar error is the table\'s', async (t) => {
  for (const code of ERROR_CODES) {
    const flag = ERRORS[code].flag;
    t.equal(responseFlags({ errorCode: code, status: ERRORS[code].status, attempts: 1, clientGone: false }), flag ?? undefined, code);
  }
  // URX follows the codes whose failure kind is an upstream failure.
  const retried = (code: ErrorCode): string | undefined => responseFlags({ errorCode: code, status: ERRORS[code].status, attempts: 2, clientGone: false });
  t.equal(retried('UPSTREAM_PROTOCOL_ERROR'), 'UPE,URX');
  t.equal(retried('UPSTREAM_TIMEOUT'), 'UT,URX');
  t.equal(retried('BAD_REQUEST'), 'DPE', 'the client\'s body failing is not an upstream failure');
  t.equal(retried('OVERLOADED'), 'UO');
});

t.test('upstream errors map to the code of their failure kind', async (t) => {
  const withCode = (code: string): Error => Object.assign(new Error(code), { code });
  const cases: Array<[unknown, AttemptFailureKind, ErrorCode]> = [
    [withCode('ECONNREFUSED'), 'connect-failure', 'UPSTREAM_CONNECT_FAILURE'],
    [withCode('ECONNRESET'), 'reset', 'UPSTREAM_RESET'],
    [withCode('UND_ERR_HEADERS_TIMEOUT'), 'timeout', 'UPSTREAM_TIMEOUT'],
    [withCode('HPE_INVALID_CONSTANT'), 'protocol-error', 'UPSTREAM_PROTOCOL_ERROR'],
    [withCode('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH'), 'request-body', 'BAD_REQUEST'],
    [new Error('anything else'), 'reset', 'UPSTREAM_RESET'],
  ];
  for (const [error, kind, code] of cases) {
    const failure = classifyUpstreamError(error);
    t.equal(failure.kind, kind, `${(error as Error).message}: kind`);
    t.equal(failure.code, code, `${(error as Error).message}: code`);
  }
});

t.test('the sidecar\'s own errors keep their code; their kind is what the attempt saw', async (t) => {
  const cases: Array<[ErrorCode, AttemptFailureKind]> = [
    ['UPSTREAM_TIMEOUT', 'timeout'],
    ['UPSTREAM_CONNECT_FAILURE', 'connect-failure'],
    ['UPSTREAM_RESET', 'reset'],
    // Raised by the sidecar for a response header it cannot relay: it drops the connection.
    ['UPSTREAM_PROTOCOL_ERROR', 'reset'],
    ['BAD_REQUEST', 'request-body'],
    ['REQUEST_TIMEOUT', 'request-body'],
    ['REQUEST_TOO_LARGE', 'request-body'],
  ];
  for (const [code, kind] of cases) {
    const failure = classifyUpstreamError(new SidecarError(code));
    t.equal(failure.code, code);
    t.equal(failure.kind, kind, code);
  }
});
