import t from 'tap';
import { parseConfigText } from '../../src/config/load';
import type { ListenerConfig } from '../../src/config/types';
import { planListeners } from '../../src/listener/plan';

/** Compiles `name@host:port[ key: value]` listener lines into ListenerConfigs. */
function listeners(...specs: string[]): readonly ListenerConfig[] {
  const yaml = `listeners:\n${specs
    .map((spec) => {
      const [head, ...extra] = spec.split(' ');
      const [name, address] = head.split('@');
      return `  - name: ${name}\n    address: ${address}\n${extra.map((e) => `    ${e.replace('=', ': ')}\n`).join('')}    routes: [{ name: r, match: { prefix: / }, directResponse: { status: 200 } }]`;
    })
    .join('\n')}\n`;
  const loaded = parseConfigText(yaml, '/tmp/plan.yaml');
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.config.listeners;
}

const names = (list: readonly { name: string }[]): string[] => list.map((l) => l.name);

t.test('same name and address: kept, with the fields changed in place', async (t) => {
  const plan = planListeners(listeners('a@127.0.0.1:8080'), listeners('a@127.0.0.1:8080 keepAliveTimeout=9s'));
  t.same(plan.refused, []);
  t.same(plan.keep.map((k) => k.changed), [['keepAliveTimeoutMs']]);
  t.same([plan.add, plan.move, plan.remove], [[], [], []]);
});

t.test('added, removed and moved listeners', async (t) => {
  const plan = planListeners(
    listeners('keep@127.0.0.1:8080', 'gone@127.0.0.1:8081', 'mover@127.0.0.1:8082'),
    listeners('keep@127.0.0.1:8080', 'mover@127.0.0.1:9082', 'new@127.0.0.1:9083'),
  );
  t.same(plan.refused, []);
  t.same(plan.keep.map((k) => k.after.name), ['keep']);
  t.same(names(plan.add), ['new']);
  t.same(plan.move.map((m) => `${m.before.port}->${m.after.port}`), ['8082->9082']);
  t.same(names(plan.remove), ['gone']);
});

t.test('a new name at a running address is a rename, kept on its socket', async (t) => {
  const plan = planListeners(listeners('old@127.0.0.1:8080'), listeners('new@127.0.0.1:8080'));
  t.same(plan.refused, []);
  t.same(plan.keep.map((k) => `${k.before.name}->${k.after.name}`), ['old->new']);
  t.same([plan.add, plan.remove], [[], []]);
});

t.test('a setting fixed at bind time refuses the reload, naming listener and field', async (t) => {
  const plan = planListeners(listeners('a@127.0.0.1:8080'), listeners('a@127.0.0.1:8080 maxHeaderBytes=32KiB'));
  t.equal(plan.refused.length, 1);
  t.equal(plan.refused[0].listener, 'a');
  t.match(plan.refused[0].message, /maxHeaderBytes cannot change while it stays bound at 127\.0\.0\.1:8080.*move the listener/);
});

t.test('the same change is fine together with a move: the new socket is built with it', async (t) => {
  const plan = planListeners(listeners('a@127.0.0.1:8080'), listeners('a@127.0.0.1:8090 maxHeaderBytes=32KiB'));
  t.same(plan.refused, []);
  t.equal(plan.move.length, 1);
});

t.test('taking an address another listener holds until the reload completes is refused', async (t) => {
  const swap = planListeners(listeners('a@127.0.0.1:8080', 'b@127.0.0.1:8081'), listeners('a@127.0.0.1:8081', 'b@127.0.0.1:8080'));
  t.equal(swap.refused.length, 2);
  t.match(swap.refused[0].message, /wants 127\.0\.0\.1:8081, which listener b holds/);
  const takeOver = planListeners(listeners('a@127.0.0.1:8080', 'b@127.0.0.1:8081'), listeners('a@127.0.0.1:8081'));
  t.equal(takeOver.refused.length, 1, 'b is removed in the same reload, but still bound while a binds');
});

t.test('port 0 never collides and is never matched by address', async (t) => {
  const plan = planListeners(listeners('a@127.0.0.1:0'), listeners('a@127.0.0.1:0', 'b@127.0.0.1:0'));
  t.same(plan.refused, []);
  t.same(names(plan.add), ['b']);
  const renamed = planListeners(listeners('a@127.0.0.1:0'), listeners('b@127.0.0.1:0'));
  t.same([names(renamed.add), names(renamed.remove)], [['b'], ['a']]);
});
