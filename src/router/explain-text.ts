import type { Explanation } from './explain';

/** The text `sidecar explain` prints for an Explanation. */
export function renderExplanation(e: Explanation): string {
  const lines: string[] = [];
  const host = e.request.host === '' ? '' : ` (host ${e.request.host})`;
  lines.push(`${e.request.method} ${e.request.path}${e.request.query}${host}`);
  for (const listener of e.listeners) {
    lines.push(`listener ${listener.listener}: ${listener.route === null ? 'no route matches' : `route ${listener.route}`}`);
    for (const miss of listener.missed) {
      lines.push(`  not ${miss.route}:`);
      for (const reason of miss.reasons) lines.push(`    ${reason}`);
    }
  }
  if (!e.matched) {
    lines.push('result: no route (the sidecar answers 404 NO_ROUTE)');
    return lines.join('\n') + '\n';
  }
  lines.push(`result: listener ${e.listener}, route ${e.route}`);
  if (e.action === 'directResponse') {
    lines.push(`  answered by the sidecar: ${e.directResponse?.status ?? ''} (directResponse)`);
    return lines.join('\n') + '\n';
  }
  if (e.action === 'redirect') {
    lines.push(`  redirected by the sidecar: ${e.redirect?.status ?? ''} (redirect)`);
    return lines.join('\n') + '\n';
  }
  lines.push(`  cluster ${e.cluster}`);
  for (const url of e.upstreamUrls) lines.push(`  upstream ${url}`);
  if (e.upstreamHost !== null) lines.push(`  host header ${e.upstreamHost}`);
  const p = e.policies;
  if (p !== null) {
    if (p.chain === 'tunnel') lines.push('  chain: WebSocket tunnel (no cors, compression, fault or mirror; access and auth checked at the upgrade)');
    // In the order the chain applies them (pipeline/compose.ts).
    if (p.access !== null) lines.push(`  access: allow ${p.access.allow.join(', ') || 'any'}; deny ${p.access.deny.join(', ') || 'none'}${p.access.clientCertSans.length > 0 ? `; client certificates ${p.access.clientCertSans.join(', ')}` : ''}`);
    if (p.rateLimit !== null) lines.push(`  rate limit: ${p.rateLimit.requests} per ${p.rateLimit.per} (+${p.rateLimit.burst} burst) per ${p.rateLimit.key}`);
    if (p.cors !== null) lines.push(`  cors: origins ${p.cors.allowOrigins.join(', ')}${p.cors.allowCredentials ? ', with credentials' : ''}`);
    if (p.auth !== null) lines.push(`  auth: ${p.auth.kind} (${p.auth.detail})`);
    if (p.compression !== null) lines.push(`  compression: ${p.compression.algorithms.join(', ')} from ${p.compression.minBytes} bytes`);
    if (p.fault !== null) lines.push(`  fault: delay ${p.fault.delay ?? 'none'}; abort ${p.fault.abort ?? 'none'}${p.fault.header === null ? '' : `; only with header ${p.fault.header}`}`);
    if (p.mirror !== null) lines.push(`  mirror: ${p.mirror.percent}% to ${p.mirror.cluster} (bodies up to ${p.mirror.maxBodyBytes} bytes)`);
    if (p.weightedClusters !== null) lines.push(`  weighted clusters: ${p.weightedClusters.clusters.join(', ')}${p.weightedClusters.hashOn === null ? '' : `, sticky on ${p.weightedClusters.hashOn}`}`);
    lines.push(`  load balancer: ${p.loadBalancer}`);
    lines.push(`  deadline ${p.deadline}; body limit ${p.maxRequestBodyBytes} bytes`);
    if (p.retry === null) lines.push('  retry: none');
    else {
      const r = p.retry;
      lines.push(
        `  retry: ${r.attempts} attempts on ${[...r.on, ...r.statusCodes.map(String)].join(', ')}; per try ${r.perTryTimeout ?? 'the deadline'}; backoff ${r.backoff}` +
          (r.methodRetried ? '' : ` (not for ${e.request.method}: its method is not retried)`),
      );
    }
    lines.push(`  circuit breaker: ${p.circuitBreaker.state} (opens at ${p.circuitBreaker.errorThresholdPercentage}% errors over ${p.circuitBreaker.volumeThreshold} requests)`);
    lines.push(`  retry budget: ${p.retryBudget.available === null ? 'unknown offline' : `${p.retryBudget.available} retries left`} (ratio ${p.retryBudget.ratio}, ${p.retryBudget.minPerSecond}/s reserve)`);
    if (p.healthyEndpoints !== null) lines.push(`  healthy endpoints: ${p.healthyEndpoints} of ${e.upstreamUrls.length}`);
    if (p.requestHeaders.add.length > 0 || p.requestHeaders.remove.length > 0) {
      lines.push(`  request headers: add ${p.requestHeaders.add.join('; ') || 'none'}; remove ${p.requestHeaders.remove.join(', ') || 'none'}`);
    }
  }
  return lines.join('\n') + '\n';
}
