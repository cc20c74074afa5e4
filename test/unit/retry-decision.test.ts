import t from 'tap';
import type { RetryOn, RetryPolicy } from '../../src/config/types';
import { decideRetry, matchesRetryOn, mayRetryStaleConnection, SKIPPED_RETRY_REASONS, type RetryDecision, type RetryInput, type StaleConnectionInput } from '../../src/policy/retry';

function policy(overrides: Partial<Omit<RetryPolicy, 'on' | 'statusCodes' | 'methods'>> & { on?: RetryOn[]; statusCodes?: number[]; methods?: string[] } = {}): RetryPolicy {
  return {
    attempts: overrides.attempts ?? 2,
    on: new Set(overrides.on ?? ['connect-failure', 'reset', 'gateway-error']),
    statusCodes: new Set(overrides.statusCodes ?? []),
    perTryTimeoutMs: undefined,
    backoff: { baseMs: 25, maxMs: 250 },
    methods: new Set(overrides.methods ?? ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']),
    idempotencyKey: overrides.idempotencyKey ?? false,
    maxBodyBytes: 65536,
  };
}

/** A GET whose first try got a 503, with time, budget and a replayable body: a retry. */
function input(overrides: Partial<RetryInput> = {}): RetryInput {
  return {
    policy: policy(),
    attempt: 1,
    outcome: { status: 503 },
    method: 'GET',
    hasIdempotencyKey: false,
    bodyReplayable: true,
    responseStarted: false,
    remainingMs: 10_000,
    delayMs: 20,
    budgetAvailable: true,
    ...overrides,
  };
}

const retry = (reason: string): RetryDecision => ({ kind: 'retry', reason } as RetryDecision);
const no = (reason: string): RetryDecision => ({ kind: 'no', reason } as RetryDecision);

const table: Array<[string, Partial<RetryInput>, RetryDecision]> = [
  ['503 with gateway-error', {}, retry('503')],
  ['502 with gateway-error', { outcome: { status: 502 } }, retry('502')],
  ['504 with gateway-error', { outcome: { status: 504 } }, retry('504')],
  ['500 is not a gateway error', { outcome: { status: 500 } }, no('not-retriable')],
  ['500 with 5xx', { policy: policy({ on: ['5xx'] }), outcome: { status: 500 } }, retry('500')],
  ['599 with 5xx', { policy: policy({ on: ['5xx'] }), outcome: { status: 599 } }, retry('599')],
  ['200 is never retried', { policy: policy({ on: ['5xx'] }), outcome: { status: 200 } }, no('not-retriable')],
  ['404 is never retried by 5xx', { policy: policy({ on: ['5xx', 'gateway-error'] }), outcome: { status: 404 } }, no('not-retriable')],
  ['409 with retriable-4xx', { policy: policy({ on: ['retriable-4xx'] }), outcome: { status: 409 } }, retry('409')],
  ['409 without retriable-4xx', { outcome: { status: 409 } }, no('not-retriable')],
  ['429 in statusCodes', { policy: policy({ on: ['retriable-status-codes'], statusCodes: [429] }), outcome: { status: 429 } }, retry('429')],
  ['429 not in statusCodes', { policy: policy({ on: ['retriable-status-codes'], statusCodes: [418] }), outcome: { status: 429 } }, no('not-retriable')],
  ['connect failure with connect-failure', { policy: policy({ on: ['connect-failure'] }), outcome: { failure: 'connect-failure' } }, retry('connect-failure')],
  ['connect failure with 5xx', { policy: policy({ on: ['5xx'] }), outcome: { failure: 'connect-failure' } }, retry('connect-failure')],
  ['reset with reset', { policy: policy({ on: ['reset'] }), outcome: { failure: 'reset' } }, retry('reset')],
  ['reset is not a connect failure', { policy: policy({ on: ['connect-failure'] }), outcome: { failure: 'reset' } }, no('not-retriable')],
  ['per-try timeout with gateway-error (a 504)', { policy: policy({ on: ['gateway-error'] }), outcome: { failure: 'timeout' } }, retry('timeout')],
  ['per-try timeout with reset', { policy: policy({ on: ['reset'] }), outcome: { failure: 'timeout' } }, retry('timeout')],
  ['per-try timeout with only retriable-4xx', { policy: policy({ on: ['retriable-4xx'] }), outcome: { failure: 'timeout' } }, no('not-retriable')],
  ['malformed response with 5xx', { policy: policy({ on: ['5xx'] }), outcome: { failure: 'protocol-error' } }, retry('protocol-error')],
  ["the client's body failing is never retried", { policy: policy({ on: ['5xx', 'reset'] }), outcome: { failure: 'request-body' } }, no('not-retriable')],
  ['response already started', { responseStarted: true, outcome: { failure: 'reset' } }, no('response-started')],
  ['second retry of two', { attempt: 2 }, retry('503')],
  ['third retry of two', { attempt: 3 }, no('attempts-exhausted')],
  ['attempts: 0', { policy: policy({ attempts: 0 }) }, no('attempts-exhausted')],
  ['POST is not in the methods', { method: 'POST' }, no('method')],
  ['POST with Idempotency-Key but the route does not allow it', { method: 'POST', hasIdempotencyKey: true }, no('method')],
  ['POST with idempotencyKey but no header', { method: 'POST', policy: policy({ idempotencyKey: true }) }, no('method')],
  ['POST with idempotencyKey and the header', { method: 'POST', hasIdempotencyKey: true, policy: policy({ idempotencyKey: true }) }, retry('503')],
  ['POST whose connection was refused (never sent)', { method: 'POST', outcome: { failure: 'connect-failure' } }, retry('connect-failure')],
  ['POST reset after sending', { method: 'POST', outcome: { failure: 'reset' } }, no('method')],
  ['PATCH listed in methods', { method: 'PATCH', policy: policy({ methods: ['PATCH'] }) }, retry('503')],
  ['body larger than maxBodyBytes', { bodyReplayable: false }, no('body_too_large')],
  ['backoff longer than the time left', { delayMs: 300, remainingMs: 200 }, no('deadline')],
  ['backoff equal to the time left', { delayMs: 200, remainingMs: 200 }, no('deadline')],
  ['deadline already passed', { delayMs: 0, remainingMs: -5 }, no('deadline')],
  ['budget spent', { budgetAvailable: false }, no('budget')],
  // The order of the checks decides which reason is reported.
  ['not retriable wins over everything', { outcome: { status: 200 }, method: 'POST', budgetAvailable: false }, no('not-retriable')],
  ['exhausted wins over method', { attempt: 3, method: 'POST' }, no('attempts-exhausted')],
  ['method wins over body', { method: 'POST', bodyReplayable: false }, no('method')],
  ['body wins over deadline', { bodyReplayable: false, remainingMs: 0 }, no('body_too_large')],
  ['deadline wins over budget', { remainingMs: 0, budgetAvailable: false }, no('deadline')],
];

for (const [name, overrides, expected] of table) {
  t.same(decideRetry(input(overrides)), expected, name);
}

t.test('skipped-retry reasons are the four the metric documents', async (t) => {
  t.same([...SKIPPED_RETRY_REASONS].sort(), ['body_too_large', 'budget', 'deadline', 'method']);
});

t.test('matchesRetryOn: every condition alone', async (t) => {
  const statuses = [200, 404, 409, 429, 500, 502, 503, 504, 599];
  const expectations: Record<RetryOn, number[]> = {
    '5xx': [500, 502, 503, 504, 599],
    'gateway-error': [502, 503, 504],
    'retriable-4xx': [409],
    'retriable-status-codes': [429],
    'connect-failure': [],
    reset: [],
    cancelled: [],
    'deadline-exceeded': [],
    internal: [],
    'resource-exhausted': [],
    unavailable: [],
  };
  for (const [on, matching] of Object.entries(expectations) as Array<[RetryOn, number[]]>) {
    const p = policy({ on: [on], statusCodes: on === 'retriable-status-codes' ? [429] : [] });
    t.same(statuses.filter((status) => matchesRetryOn(p, { status })), matching, `${on} matches exactly ${matching.join(', ') || 'no status'}`);
  }
});

t.test('gRPC statuses: each retry.on name matches its own status only, never an HTTP status, and retries a POST', async (t) => {
  const names = ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] as const;
  for (const on of names) {
    const p = policy({ on: [on] });
    t.same(names.filter((grpc) => matchesRetryOn(p, { grpc })), [on], `${on} matches only itself`);
    t.notOk(matchesRetryOn(p, { status: 503 }), `${on} does not match an HTTP 503`);
    t.notOk(matchesRetryOn(p, { failure: 'reset' }), `${on} does not match a reset`);
  }
  t.notOk(matchesRetryOn(policy({ on: ['5xx'] }), { grpc: 'unavailable' }), '5xx does not cover a gRPC status');
  t.same(decideRetry(input({ policy: policy({ on: ['unavailable'] }), method: 'POST', outcome: { grpc: 'unavailable' } })), { kind: 'retry', reason: 'unavailable' }, 'a gRPC POST is retried');
  t.same(decideRetry(input({ policy: policy({ on: ['unavailable'] }), method: 'POST', outcome: { grpc: 'unavailable' }, responseStarted: true })), { kind: 'no', reason: 'response-started' }, 'never once the response started');
});

t.test('mayRetryStaleConnection: once, idempotent methods, replayable body, before any response byte, within the deadline', async (t) => {
  const base: StaleConnectionInput = { method: 'GET', alreadyRetried: false, reusedConnection: true, responseStarted: false, bodyReplayable: true, remainingMs: 1000 };
  t.ok(mayRetryStaleConnection(base));
  for (const method of ['HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) t.ok(mayRetryStaleConnection({ ...base, method }), method);
  for (const method of ['POST', 'PATCH', 'CONNECT', 'get']) t.notOk(mayRetryStaleConnection({ ...base, method }), method);
  t.notOk(mayRetryStaleConnection({ ...base, alreadyRetried: true }), 'only once');
  t.notOk(mayRetryStaleConnection({ ...base, reusedConnection: false }), 'a fresh connection');
  t.notOk(mayRetryStaleConnection({ ...base, responseStarted: true }), 'part of a response arrived');
  t.notOk(mayRetryStaleConnection({ ...base, method: 'PUT', bodyReplayable: false }), 'a body that was not kept');
  t.notOk(mayRetryStaleConnection({ ...base, remainingMs: 0 }), 'the deadline passed');
  const unprocessed: StaleConnectionInput = { ...base, reusedConnection: false, unprocessed: true };
  for (const method of ['GET', 'POST', 'PATCH']) t.ok(mayRetryStaleConnection({ ...unprocessed, method }), `an HTTP/2 stream the app did not process: ${method}`);
  t.notOk(mayRetryStaleConnection({ ...unprocessed, method: 'POST', bodyReplayable: false }), 'unprocessed, but the body was not kept');
  t.notOk(mayRetryStaleConnection({ ...unprocessed, alreadyRetried: true }), 'unprocessed: still only once');
});
