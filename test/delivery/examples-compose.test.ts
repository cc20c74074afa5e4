/**
 * examples/docker-compose: the compose file parses (merge keys resolved as compose does),
 * and what it mounts, publishes and names agrees with the sidecar's route file.
 */
import t from 'tap';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SidecarConfig } from '../../src/config/types';
import {
  ROOT,
  asList,
  asMap,
  asString,
  asStrings,
  compiledConfig,
  durationSeconds,
  flagValue,
  readYaml,
  type Yaml,
  type YamlMap,
} from '../helpers/examples';

const DIR = path.join(ROOT, 'examples', 'docker-compose');
const compose = readYaml(path.relative(ROOT, path.join(DIR, 'compose.yaml')));
const services = asMap(compose.services);
const namedVolumes = new Set(Object.keys(asMap(compose.volumes)));
/** Seconds between the end of the drain and docker's SIGKILL, at the least. */
const MIN_SHUTDOWN_MARGIN_SECONDS = 1;

interface Mount {
  readonly source: string;
  readonly target: string;
  readonly bind: boolean;
}

/** Short syntax `source:target[:mode]`; a source starting with . or / is a bind mount. */
function mounts(service: YamlMap): Mount[] {
  return asStrings(service.volumes).map((spec) => {
    const [source, target] = spec.split(':');
    return { source, target, bind: source.startsWith('.') || source.startsWith('/') };
  });
}

/** Entrypoint and command as words (a `sh -c "..."` script split too: good enough to find flags). */
const words = (value: Yaml | undefined): string[] => (typeof value === 'string' ? [value] : asStrings(value)).flatMap((w) => w.split(/\s+/));
const commandOf = (service: YamlMap): string[] => [...words(service.entrypoint), ...words(service.command)];
/** The service running `sidecar run -c FILE` (the image's entrypoint is `sidecar`). */
const sidecarEntry = Object.entries(services).find(([, s]) => asStrings(asMap(s).command)[0] === 'run');
const sidecarName = sidecarEntry?.[0] ?? '';
const sidecar = asMap(sidecarEntry?.[1]);
const configPath = flagValue(commandOf(sidecar), '-c', '--config') ?? '';

function mountHolding(service: YamlMap, file: string): Mount | undefined {
  return mounts(service).find((m) => file.startsWith(`${m.target.replace(/\/$/, '')}/`));
}

/** Container ports a service publishes (`[ip:]host:container`) or exposes to the network. */
function containerPorts(service: YamlMap): { published: number[]; reachable: number[] } {
  const published = asList(service.ports).map((p) => Number(String(p).split(':').pop()));
  const exposed = asList(service.expose).map((p) => Number(p));
  return { published, reachable: [...published, ...exposed] };
}

let config: SidecarConfig;
t.before(async () => {
  const mount = mountHolding(sidecar, configPath);
  if (!mount?.bind) throw new Error(`no bind mount holds ${configPath}`);
  config = await compiledConfig(path.relative(ROOT, path.join(DIR, mount.source, path.relative(mount.target, configPath))));
});

t.test('the sidecar reads its route file from a folder of this repository, mounted read-only', async (t) => {
  t.ok(sidecarName, `the sidecar service is ${sidecarName}`);
  const mount = mountHolding(sidecar, configPath);
  t.ok(mount?.bind, `${configPath} comes from a bind mount`);
  t.equal(mount?.target, path.dirname(configPath), 'the folder is mounted, not the file');
  const source = path.join(DIR, mount?.source ?? '');
  t.ok(existsSync(source) && statSync(source).isDirectory(), `${mount?.source} is a folder of the repository`);
  t.ok(existsSync(path.join(source, path.basename(configPath))), `it holds ${path.basename(configPath)}`);
  t.ok(asStrings(sidecar.volumes).some((v) => v.startsWith(`${mount?.source}:`) && v.endsWith(':ro')), 'read-only');
});

t.test('every bind mount source exists; every named volume is declared', async (t) => {
  for (const [name, service] of Object.entries(services)) {
    for (const m of mounts(asMap(service))) {
      if (m.bind) t.ok(existsSync(path.join(DIR, m.source)), `${name}: ${m.source} exists`);
      else t.ok(namedVolumes.has(m.source), `${name}: volume ${m.source} is declared`);
    }
  }
});

t.test('the certificates the route file names are written into the volume the sidecar mounts', async (t) => {
  const files = config.listeners.flatMap((l) => (l.tls ? [l.tls.certPath, l.tls.keyPath] : []));
  t.ok(files.length >= 2, 'the example terminates TLS');
  for (const file of files) {
    const mount = mountHolding(sidecar, file);
    t.ok(mount && !mount.bind, `${file} is in the named volume ${mount?.source}`);
    const writer = Object.entries(services).find(([, s]) => {
      const svc = asMap(s);
      const out = flagValue(commandOf(svc), '--out');
      return out !== undefined && mounts(svc).some((m) => m.source === mount?.source && m.target === out);
    });
    t.ok(writer, `a service runs \`sidecar certs --out\` into volume ${mount?.source}`);
    t.match(path.basename(file), /^(server\.crt|server\.key)$/, `${path.basename(file)} is a file \`sidecar certs\` writes`);
    if (writer) {
      const dependsOn = asMap(asMap(sidecar.depends_on)[writer[0]]);
      t.equal(dependsOn.condition, 'service_completed_successfully', `${sidecarName} starts after ${writer[0]} has finished`);
    }
  }
});

t.test("the sidecar publishes the route file's listener and admin ports", async (t) => {
  const { published } = containerPorts(sidecar);
  for (const l of config.listeners) t.ok(published.includes(l.port), `listener ${l.name} :${l.port} is published`);
  t.ok(published.includes(config.admin.port), `admin :${config.admin.port} is published`);
  const adminMapping = asList(sidecar.ports).map(String).find((p) => p.endsWith(`:${config.admin.port}`));
  t.match(adminMapping, /^127\.0\.0\.1:/, 'the admin port only on the host loopback');
});

t.test('the hosts the route file sends to are services of this file, on ports they listen on', async (t) => {
  const targets = [...config.clusters.values()].flatMap((c) => c.endpoints.map((e) => new URL(e.url)));
  if (config.tracing.endpoint) targets.push(new URL(config.tracing.endpoint));
  t.ok(targets.length >= 2, `${targets.length} hosts to check`);
  for (const url of targets) {
    const service = asMap(services[url.hostname]);
    t.ok(services[url.hostname], `${url.href}: ${url.hostname} is a service`);
    t.ok(containerPorts(service).reachable.includes(Number(url.port)), `${url.hostname} listens on ${url.port}`);
  }
});

t.test('stop_grace_period covers drain.delay + drain.timeout', async (t) => {
  const grace = durationSeconds(asString(sidecar.stop_grace_period) ?? '10s');
  const drain = (config.drain.delayMs + config.drain.timeoutMs) / 1000;
  t.ok(grace >= drain + MIN_SHUTDOWN_MARGIN_SECONDS, `stop_grace_period ${grace}s >= drain ${drain}s + margin`);
});

t.test('build contexts hold a Dockerfile; images are pinned', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    const service = asMap(s);
    const build = asMap(service.build);
    if (service.build !== undefined) {
      const context = path.join(DIR, asString(build.context) ?? asString(service.build) ?? '.');
      t.ok(existsSync(path.join(context, asString(build.dockerfile) ?? 'Dockerfile')), `${name}: ${path.relative(ROOT, context) || '.'} has its Dockerfile`);
    } else {
      t.match(asString(service.image) ?? '', /:[0-9][\w.-]*$/, `${name}: ${String(service.image)} is pinned`);
    }
  }
});
