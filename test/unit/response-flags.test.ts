import t from 'tap';
import { responseFlags } from '../../src/telemetry/response-flags';

t.test('each sidecar error maps to its Envoy-style flag', async (t) => {
  const cases: Array<[Parameters<typeof responseFlags>[0]['errorCode'], number, string | undefined]> = [
    [undefined, 200, undefined],
    [undefined, 503, undefined],
    ['NO_ROUTE', 404, 'NR'],
    ['UPSTREAM_CONNECT_FAILURE', 503, 'UF'],
    ['CIRCUIT_OPEN', 503, 'UO'],
    ['OVERLOADED', 503, 'UO'],
    ['NO_HEALTHY_UPSTREAM', 503, 'UH'],
    ['UPSTREAM_TIMEOUT', 504, 'UT'],
    ['UPSTREAM_RESET', 502, 'UR'],
    ['UPSTREAM_PROTOCOL_ERROR', 502, 'UPE'],
    ['REQUEST_TOO_LARGE', 413, 'DPE'],
    ['REQUEST_TIMEOUT', 408, 'DT'],
  ];
  for (const [errorCode, status, expected] of cases) {
    t.equal(responseFlags({ errorCode, status, attempts: 1, clientGone: false }), expected, `${errorCode ?? status}`);
  }
});

t.test('URX: retried, and the last attempt still failed', async (t) => {
  t.equal(responseFlags({ errorCode: 'UPSTREAM_CONNECT_FAILURE', status: 503, attempts: 3, clientGone: false }), 'UF,URX');
  t.equal(responseFlags({ errorCode: undefined, status: 503, attempts: 2, clientGone: false }), 'URX', 'the app\'s 5xx after a retry');
  t.equal(responseFlags({ errorCode: undefined, status: 200, attempts: 2, clientGone: false }), undefined, 'a retry that succeeded');
  t.equal(responseFlags({ errorCode: 'CIRCUIT_OPEN', status: 503, attempts: 2, clientGone: false }), 'UO', 'not an upstream failure');
});

t.test('DC: the client left; the reset the sidecar then makes upstream is not reported as UR', async (t) => {
  t.equal(responseFlags({ errorCode: undefined, status: 499, attempts: 1, clientGone: true }), 'DC');
  t.equal(responseFlags({ errorCode: 'UPSTREAM_RESET', status: 200, attempts: 1, clientGone: true }), 'DC');
  t.equal(responseFlags({ errorCode: 'UPSTREAM_TIMEOUT', status: 504, attempts: 1, clientGone: true }), 'UT,DC');
});
