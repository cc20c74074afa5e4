import t from 'tap';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { startUpstream } from '../helpers/upstream';
import { simpleConfig, startSidecar } from '../helpers/sidecar';

// The app closes idle keep-alive sockets after 1 s and a request arrives every ~1.05 s: each
// one lands right when the app is closing the pooled socket. The pool must never hand out a
// socket the app is about to close. The pacing is the scenario itself, not a wait for an event.
const APP_KEEP_ALIVE_MS = 1000;
const PERIOD_MS = 1050;
const DURATION_MS = 20_000;

t.test('keep-alive race: zero errors at the app\'s keep-alive timeout', async (t) => {
  const app = await startUpstream(
    (req, res) => {
      req.resume();
      req.on('end', () => res.end(`ok ${req.method}`));
    },
    { keepAliveTimeout: APP_KEEP_ALIVE_MS },
  );
  const proxy = await startSidecar(simpleConfig(app.url, '', 'idleTimeout: 30s'));
  t.teardown(async () => {
    await proxy.close();
    await app.close();
  });

  const failures: string[] = [];
  const rounds = Math.floor(DURATION_MS / PERIOD_MS);
  for (let i = 0; i < rounds; i++) {
    const method = i % 2 === 0 ? 'GET' : 'POST';
    const res = await request(`${proxy.url()}/race`, { method, body: method === 'POST' ? 'payload' : undefined });
    const text = await res.body.text();
    if (res.statusCode !== 200) failures.push(`${method} #${i}: ${res.statusCode} ${text}`);
    await delay(PERIOD_MS);
  }
  t.same(failures, [], `${rounds} requests, none failed`);
});
