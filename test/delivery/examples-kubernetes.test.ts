/**
 * examples/kubernetes: the manifests parse, and every port, path, name and number in them
 * agrees with the sidecar's route file (the file the pod actually runs).
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { SidecarConfig } from '../../src/config/types';
import {
  ROOT,
  adminPathsAnswering,
  asList,
  asMap,
  asMaps,
  asString,
  asStrings,
  compiledConfig,
  flagValue,
  readYaml,
  readYamlDocuments,
  type Yaml,
  type YamlMap,
} from '../helpers/examples';

const DIR = 'examples/kubernetes';
const rel = (file: string): string => path.join(DIR, file);
/** Seconds between the last step of a shutdown and the kubelet's SIGKILL, at the least. */
const MIN_SHUTDOWN_MARGIN_SECONDS = 1;

const kustomization = readYaml(rel('kustomization.yaml'));
const resources = asStrings(kustomization.resources);
const objects: YamlMap[] = resources.flatMap((file) => readYamlDocuments(rel(file)).map(asMap));
const byKind = (kind: string): YamlMap[] => objects.filter((o) => o.kind === kind);

const deployment = byKind('Deployment')[0] ?? {};
const template = asMap(asMap(deployment.spec).template);
const podLabels = asMap(asMap(template.metadata).labels);
const pod = asMap(template.spec);
const initContainers = asMaps(pod.initContainers);
const appContainers = asMaps(pod.containers);
const allContainers = [...initContainers, ...appContainers];
const sidecar = initContainers.find((c) => c.restartPolicy === 'Always') ?? {};
const sidecarArgs = asStrings(sidecar.args);
const configPath = flagValue(sidecarArgs, '-c', '--config') ?? '';
const mounts = asMaps(sidecar.volumeMounts);
const volumes = asMaps(pod.volumes);

/** The volume mounted at the folder holding `file`, with the mount. */
function volumeHolding(file: string): { mount: YamlMap; volume: YamlMap } | undefined {
  const mount = mounts.find((m) => {
    const at = asString(m.mountPath) ?? '';
    return file.startsWith(at.endsWith('/') ? at : `${at}/`);
  });
  const volume = volumes.find((v) => v.name === mount?.name);
  return mount && volume ? { mount, volume } : undefined;
}

/** A container port by number or name, across the pod's containers. */
function containerPort(port: Yaml | undefined, containers = allContainers): YamlMap | undefined {
  const ports = containers.flatMap((c) => asMaps(c.ports));
  return ports.find((p) => p.containerPort === port || (typeof port === 'string' && p.name === port));
}

const matchesLabels = (selector: Yaml | undefined): boolean =>
  Object.entries(asMap(selector)).every(([k, v]) => podLabels[k] === v);

/** The route file the pod reads: the configMapGenerator file behind the `-c` path. */
function routeFileOfPod(): string | undefined {
  const holder = volumeHolding(configPath);
  const configMapName = asString(asMap(holder?.volume.configMap).name);
  const generator = asMaps(kustomization.configMapGenerator).find((g) => g.name === configMapName);
  for (const entry of asStrings(generator?.files)) {
    const [key, file] = entry.includes('=') ? entry.split('=', 2) : [path.basename(entry), entry];
    if (key === path.basename(configPath)) return rel(file);
  }
  return undefined;
}

let config: SidecarConfig;
t.before(async () => {
  const routeFile = routeFileOfPod();
  if (routeFile === undefined) throw new Error(`no configMapGenerator entry gives ${configPath}`);
  config = await compiledConfig(routeFile);
});

t.test('kustomization: its resources and generator files exist, and every manifest has apiVersion and kind', async (t) => {
  for (const file of [...resources, ...asMaps(kustomization.configMapGenerator).flatMap((g) => asStrings(g.files))]) {
    t.ok(existsSync(path.join(ROOT, DIR, file.split('=').pop() ?? file)), `${file} exists`);
  }
  t.ok(objects.length >= 3, `${objects.length} objects`);
  for (const o of objects) t.ok(typeof o.apiVersion === 'string' && typeof o.kind === 'string', `${String(o.kind)} has apiVersion and kind`);
  t.equal(byKind('Deployment').length, 1, 'one Deployment');
});

t.test('the sidecar is a native sidecar reading its route file from a ConfigMap folder', async (t) => {
  t.equal(sidecar.restartPolicy, 'Always', 'an init container with restartPolicy: Always');
  t.match(configPath, /^\/.+\.ya?ml$/, `-c ${configPath}`);
  const holder = volumeHolding(configPath);
  t.ok(holder, `a volume is mounted at ${path.dirname(configPath)}`);
  t.equal(holder?.mount.mountPath, path.dirname(configPath), 'mounted as the folder of the -c file');
  t.equal(holder?.mount.subPath, undefined, 'no subPath (it would never see an update)');
  t.ok(holder?.volume.configMap, 'the volume is a ConfigMap');
  t.ok(routeFileOfPod(), `the ConfigMap generator has the key ${path.basename(configPath)}`);
  t.ok(asMap(kustomization.generatorOptions).disableNameSuffixHash, 'a stable ConfigMap name: edits update the folder in place');
});

t.test('certificates come from a Secret mounted where the route file looks for them', async (t) => {
  const tlsFiles = config.listeners.flatMap((l) => (l.tls ? [l.tls.certPath, l.tls.keyPath, ...(l.tls.clientCaPath ? [l.tls.clientCaPath] : [])] : []));
  t.ok(tlsFiles.length >= 2, 'the example terminates TLS');
  for (const file of tlsFiles) {
    const holder = volumeHolding(file);
    t.ok(holder?.volume.secret, `${file} is in a mounted Secret`);
  }
});

/** Listeners on loopback serve the pod's own containers (the egress listener): no containerPort. */
const isLoopback = (host: string): boolean => host === '127.0.0.1' || host === '::1';

t.test("the sidecar container's ports are the route file's listener and admin ports", async (t) => {
  const declared = asMaps(sidecar.ports).map((p) => p.containerPort).sort();
  const configured = [...config.listeners.filter((l) => !isLoopback(l.host)).map((l) => l.port), config.admin.port].sort();
  t.same(declared, configured, `containerPorts ${declared.join(', ')}`);
  t.not(config.admin.host, '127.0.0.1', 'the admin listener is reachable by the kubelet (not loopback)');
});

t.test('probes hit the admin port on paths that answer 200 on a ready sidecar', async (t) => {
  const probes = (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).map((name) => ({ name, probe: asMap(sidecar[name]) }));
  const paths: string[] = [];
  for (const { name, probe } of probes) {
    const get = asMap(probe.httpGet);
    t.equal(containerPort(get.port, [sidecar])?.containerPort, config.admin.port, `${name} targets the admin port`);
    paths.push(asString(get.path) ?? '');
  }
  t.equal(asString(asMap(asMap(sidecar.readinessProbe).httpGet).path), '/ready', 'readiness on /ready');
  t.equal(asString(asMap(asMap(sidecar.livenessProbe).httpGet).path), '/live', 'liveness on /live');
  const statuses = await adminPathsAnswering(paths);
  for (const [p, status] of statuses) t.equal(status, 200, `GET ${p} on the admin listener answers 200`);
});

t.test('terminationGracePeriodSeconds covers the app preStop, drain.delay and drain.timeout', async (t) => {
  const grace = Number(pod.terminationGracePeriodSeconds);
  const preStop = appContainers.reduce((sum, c) => sum + Number(asMap(asMap(asMap(c.lifecycle).preStop).sleep).seconds ?? 0), 0);
  const needed = preStop + (config.drain.delayMs + config.drain.timeoutMs) / 1000 + MIN_SHUTDOWN_MARGIN_SECONDS;
  t.ok(grace >= needed, `grace ${grace}s >= preStop ${preStop}s + drain ${config.drain.delayMs / 1000}s + ${config.drain.timeoutMs / 1000}s + margin`);
});

t.test('both directions in one pod: an inbound listener for the Service, an egress listener on loopback for the app', async (t) => {
  const egress = config.listeners.filter((l) => isLoopback(l.host));
  t.equal(egress.length, 1, 'one loopback listener: the egress');
  const app = appContainers.find((c) => c.name === 'app') ?? {};
  const env = new Map(asMaps(app.env).map((e) => [asString(e.name), asString(e.value)]));
  t.equal(env.get('PAYMENTS_URL'), `http://127.0.0.1:${egress[0]?.port}`, 'the app calls out through it');
  t.equal(env.get('HTTPS_PROXY'), `http://127.0.0.1:${egress[0]?.port}`, 'and tunnels through it');
  t.ok(egress[0]?.forwardProxy !== undefined, 'with a forwardProxy allow list');
  const remote = [...config.clusters.values()].flatMap((c) => c.endpoints).filter((e) => !e.url.includes('//127.0.0.1:'));
  t.ok(remote.length > 0 && remote.every((e) => e.url.startsWith('https://')), 'remote endpoints are https');
});

t.test("the app listens where the route file's cluster sends requests", async (t) => {
  const endpoints = [...config.clusters.values()].flatMap((c) => c.endpoints.map((e) => new URL(e.url))).filter((url) => url.protocol === 'http:');
  t.ok(endpoints.length > 0, 'the route file has endpoints');
  for (const url of endpoints) {
    t.equal(url.hostname, '127.0.0.1', `${url.href}: the app shares the pod's network namespace`);
    const listening = appContainers.some((c) => flagValue(asStrings(c.args), '--port') === url.port && flagValue(asStrings(c.args), '--host') === url.hostname);
    t.ok(listening, `an app container is started with --host ${url.hostname} --port ${url.port}`);
  }
});

t.test('the Service selects the pods and targets the sidecar listener, not the app or the admin port', async (t) => {
  const services = byKind('Service');
  t.equal(services.length, 1, 'one Service');
  for (const service of services) {
    const spec = asMap(service.spec);
    t.ok(matchesLabels(spec.selector), 'selector matches the pod labels');
    for (const port of asMaps(spec.ports)) {
      const target = containerPort(port.targetPort, [sidecar]);
      t.ok(target, `targetPort ${String(port.targetPort)} is a port of the sidecar container`);
      t.ok(config.listeners.some((l) => l.port === target?.containerPort), `targetPort ${String(port.targetPort)} is a listener port`);
    }
  }
  t.ok(matchesLabels(asMap(asMap(deployment.spec).selector).matchLabels), 'the Deployment selector matches its pod labels');
});

t.test('the NetworkPolicy selects the pods and names ports that exist', async (t) => {
  for (const policy of byKind('NetworkPolicy')) {
    const spec = asMap(policy.spec);
    t.ok(matchesLabels(asMap(spec.podSelector).matchLabels), 'podSelector matches the pod labels');
    for (const rule of asMaps(spec.ingress)) {
      for (const port of asMaps(rule.ports)) t.ok(containerPort(port.port), `port ${String(port.port)} exists in the pod`);
    }
  }
});

t.test('images are pinned to a version', async (t) => {
  for (const c of allContainers) {
    const image = asString(c.image) ?? '';
    t.match(image, /:[0-9][\w.-]*$/, `${String(c.name)}: ${image}`);
  }
  t.same(asList(pod.initContainers).length, 1, 'one init container: the sidecar');
});
