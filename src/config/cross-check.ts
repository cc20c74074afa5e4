/**
 * Cross-field checks: rules that span fields (unique names, known clusters, clashing binds,
 * the admin token off loopback). They read the raw document, so they run even when the
 * schema failed, and every error comes back at once.
 */
import { isLoopbackHost } from './cidr';
import * as D from './defaults';
import { type PathSegments, type PendingError, formatPath } from './messages';
import { asArray, asString, isRecord } from './plain-data';
import { type HostPort, parseAddress, parseEndpointUrl, show } from './schema';

/** Two binds conflict on the same port when the hosts are equal or one is a wildcard covering the other. */
function addressesConflict(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const covers = (wild: string, other: string): boolean =>
    wild === '::' || (wild === '0.0.0.0' && !other.includes(':'));
  return covers(a.host, b.host) || covers(b.host, a.host);
}

export function crossCheck(root: unknown, lineOf: (path: PathSegments) => number | undefined): PendingError[] {
  const errors: PendingError[] = [];
  if (!isRecord(root)) return errors;
  const where = (path: PathSegments): string => {
    const line = lineOf(path);
    return line === undefined ? formatPath(path) : `${formatPath(path)} (line ${line})`;
  };

  /** Flags every repeat of a name within `items`, pointing at the repeat. */
  const checkUnique = (items: readonly unknown[], basePath: PathSegments, what: string): void => {
    const first = new Map<string, number>();
    items.forEach((item, i) => {
      const n = isRecord(item) ? asString(item.name) : undefined;
      if (n === undefined) return;
      const earlier = first.get(n);
      if (earlier === undefined) first.set(n, i);
      else errors.push({ path: [...basePath, i, 'name'], message: `duplicate ${what} name ${show(n)}: already used by ${where([...basePath, earlier])}` });
    });
  };

  const clusters = asArray(root.clusters);
  checkUnique(clusters, ['clusters'], 'cluster');
  const clusterNames = clusters.flatMap((c) => (isRecord(c) && typeof c.name === 'string' ? [c.name] : []));

  clusters.forEach((cluster, ci) => {
    if (!isRecord(cluster)) return;
    const seen = new Map<string, number>();
    asArray(cluster.endpoints).forEach((endpoint, ei) => {
      const url = isRecord(endpoint) ? asString(endpoint.url) : undefined;
      const parsed = url === undefined ? undefined : parseEndpointUrl(url);
      if (parsed === undefined || typeof parsed === 'string') return;
      const earlier = seen.get(parsed.origin);
      if (earlier === undefined) seen.set(parsed.origin, ei);
      else {
        errors.push({
          path: ['clusters', ci, 'endpoints', ei, 'url'],
          message: `duplicate endpoint ${parsed.origin}: already listed as ${where(['clusters', ci, 'endpoints', earlier])}`,
        });
      }
    });
  });

  const listeners = asArray(root.listeners);
  checkUnique(listeners, ['listeners'], 'listener');
  const binds: { readonly path: PathSegments; readonly address: HostPort }[] = [];
  listeners.forEach((listener, li) => {
    if (!isRecord(listener)) return;
    const text = asString(listener.address);
    const address = text === undefined ? undefined : parseAddress(text);
    if (address !== undefined && typeof address !== 'string') {
      const path: PathSegments = ['listeners', li, 'address'];
      const clash = binds.find((b) => addressesConflict(b.address, address));
      if (clash) errors.push({ path, message: `address ${text} conflicts with ${where(clash.path)}` });
      binds.push({ path, address });
    }
    const routes = asArray(listener.routes);
    checkUnique(routes, ['listeners', li, 'routes'], 'route');
    const defined = clusterNames.length === 0 ? 'no clusters are defined' : `defined clusters: ${clusterNames.join(', ')}`;
    const checkCluster = (target: unknown, path: PathSegments): void => {
      if (typeof target === 'string' && !clusterNames.includes(target)) errors.push({ path, message: `unknown cluster ${show(target)}; ${defined}` });
    };
    routes.forEach((route, ri) => {
      if (!isRecord(route)) return;
      checkCluster(route.cluster, ['listeners', li, 'routes', ri, 'cluster']);
      asArray(route.weightedClusters).forEach((entry, wi) => {
        if (isRecord(entry)) checkCluster(entry.cluster, ['listeners', li, 'routes', ri, 'weightedClusters', wi, 'cluster']);
      });
      if (isRecord(route.mirror)) {
        const shadow = route.mirror.cluster;
        checkCluster(shadow, ['listeners', li, 'routes', ri, 'mirror', 'cluster']);
        const own = typeof route.cluster === 'string' ? [route.cluster] : asArray(route.weightedClusters).flatMap((e) => (isRecord(e) ? [e.cluster] : []));
        if (typeof shadow === 'string' && own.includes(shadow)) {
          errors.push({ path: ['listeners', li, 'routes', ri, 'mirror', 'cluster'], message: `mirror cluster ${show(shadow)} is the route's own cluster: every request would reach it twice; mirror to another cluster` });
        }
      }
    });
  });

  const adminText = isRecord(root.admin) ? asString(root.admin.address) : undefined;
  const admin = parseAddress(adminText ?? D.DEFAULT_ADMIN_ADDRESS);
  if (typeof admin !== 'string') {
    const clash = binds.find((b) => addressesConflict(b.address, admin));
    if (clash) {
      const path: PathSegments = adminText === undefined ? clash.path : ['admin', 'address'];
      const message =
        adminText === undefined
          ? `conflicts with the admin API's default address ${D.DEFAULT_ADMIN_ADDRESS}; set admin.address to another port`
          : `admin address ${adminText} conflicts with ${where(clash.path)}`;
      errors.push({ path, message });
    }
    // Off loopback, anyone who reaches the port could read the config and topology.
    const token = isRecord(root.admin) ? root.admin.token : undefined;
    if (adminText !== undefined && !isLoopbackHost(admin.host) && token === undefined) {
      errors.push({
        path: ['admin', 'address'],
        message: `admin address ${adminText} is not a loopback address: set admin.token (then every admin endpoint but /live and /ready requires "Authorization: Bearer <token>")`,
      });
    }
  }
  return errors;
}
