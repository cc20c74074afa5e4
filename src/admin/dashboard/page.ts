/**
 * The dashboard served at `GET /` of the admin listener: one page, no build step, no CDN.
 * It reads the admin API once a second (/stats, /clusters, /config, /requests) with the
 * bearer token the user typed when admin.token is set, and draws the per-route charts with
 * uPlot, served by the admin listener itself from the package's dependencies (assets.ts).
 * The page holds no data of its own: without a valid token it shows nothing but the prompt.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sidecar dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/uplot.css">
<style>
  :root { color-scheme: light; --fg: #1a1a1a; --muted: #4a4a4a; --bg: #ffffff; --line: #c8c8c8; --bad: #a4000f; --good: #0b6b2b; --warn: #7a4b00; }
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: var(--fg); background: var(--bg); }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .75rem 1rem; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 1.15rem; margin: 0; }
  main { padding: 0 1rem 2rem; max-width: 80rem; }
  h2 { font-size: 1.05rem; margin: 1.25rem 0 .5rem; }
  table { border-collapse: collapse; width: 100%; margin-bottom: .5rem; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-weight: 600; }
  .scroll { overflow-x: auto; }
  .state-open, .bad { color: var(--bad); font-weight: 600; }
  .state-half-open, .warn { color: var(--warn); font-weight: 600; }
  .state-closed, .good { color: var(--good); }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: 1rem; }
  .chart { margin: 0; }
  .chart h3 { font-size: .95rem; margin: .25rem 0; }
  .chart figcaption { color: var(--muted); font-size: .9rem; }
  code { font-size: .9em; }
  a { color: #0645ad; }
  a:focus, button:focus, input:focus { outline: 3px solid #1a5fb4; outline-offset: 2px; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; padding: 1rem; }
  input, button { font: inherit; padding: .35rem .6rem; }
  #status { color: var(--muted); }
  @media (max-width: 40rem) { th, td { padding: .25rem .3rem; font-size: .9rem; } main { padding: 0 .5rem 1rem; } }
</style>
</head>
<body>
<header>
  <h1>sidecar</h1>
  <span id="status" role="status" aria-live="polite">loading…</span>
</header>
<form id="login" hidden>
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required>
  <button type="submit">Show the dashboard</button>
  <span id="login-error" class="bad" role="alert"></span>
</form>
<main id="dashboard" hidden>
  <section aria-labelledby="h-routes"><h2 id="h-routes">Listeners and routes</h2><div class="scroll"><table id="routes">
    <thead><tr><th scope="col">Listener</th><th scope="col">Route</th><th scope="col">Match</th><th scope="col">Action</th><th scope="col">Policies</th><th scope="col">req/s</th><th scope="col">5xx</th><th scope="col">p50</th><th scope="col">p99</th></tr></thead><tbody></tbody></table></div></section>
  <section aria-labelledby="h-clusters"><h2 id="h-clusters">Clusters</h2><div class="scroll"><table id="clusters">
    <thead><tr><th scope="col">Cluster</th><th scope="col">Circuit breaker</th><th scope="col">In flight</th><th scope="col">Retry budget</th><th scope="col">Endpoints</th></tr></thead><tbody></tbody></table></div></section>
  <section aria-labelledby="h-charts"><h2 id="h-charts">Per route, last minutes</h2><div id="charts" class="charts"></div></section>
  <section aria-labelledby="h-errors"><h2 id="h-errors">Last errors</h2><div class="scroll"><table id="errors">
    <thead><tr><th scope="col">Time</th><th scope="col">Request</th><th scope="col">Route</th><th scope="col">Status</th><th scope="col">Code</th><th scope="col">Request id</th></tr></thead><tbody></tbody></table></div></section>
  <section aria-labelledby="h-reloads"><h2 id="h-reloads">Reloads</h2><p id="reloads"></p></section>
</main>
<script src="/assets/uplot.js"></script>
<script>
"use strict";
const HISTORY_POINTS = 300;
const TOKEN_KEY = "sidecar-admin-token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
const series = new Map();
const charts = new Map();
const $ = (id) => document.getElementById(id);

function formatMs(ms) { return ms === null || ms === undefined ? "–" : (ms < 10 ? ms.toFixed(1) : ms.toFixed(0)) + " ms"; }
function text(value) { return value === null || value === undefined ? "" : String(value); }
function cell(row, value, className) { const td = row.insertCell(); td.textContent = text(value); if (className) td.className = className; return td; }

async function get(path) {
  const headers = token ? { authorization: "Bearer " + token } : {};
  const res = await fetch(path, { headers, cache: "no-store" });
  if (res.status === 401) throw Object.assign(new Error("token"), { unauthorized: true });
  if (!res.ok && res.status !== 404) throw new Error(path + " answered " + res.status);
  return res.status === 404 ? null : res.json();
}

function showLogin(message) {
  $("dashboard").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "this sidecar requires its admin token";
  $("token").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login-error").textContent = "";
  refresh();
});

function describeMatch(m) {
  if (!m) return "";
  const parts = [];
  if (m.path) parts.push("path " + m.path);
  if (m.prefix) parts.push("prefix " + m.prefix);
  if (m.regex) parts.push("regex " + m.regex);
  if (m.methods) parts.push(m.methods.join(","));
  if (m.host) parts.push("host " + m.host);
  if (m.headers) parts.push(Object.entries(m.headers).map(([k, v]) => k + "=" + v).join(" "));
  return parts.join(" · ");
}

function describePolicies(r) {
  const parts = [];
  if (r.timeout) parts.push("timeout " + r.timeout);
  if (r.retry) parts.push("retry " + (r.retry.attempts ?? "default"));
  if (r.rewritePrefix !== undefined) parts.push("rewrite " + r.rewritePrefix);
  if (r.hostRewrite) parts.push("host " + r.hostRewrite);
  return parts.join(" · ") || "defaults";
}

function renderRoutes(config, stats) {
  const body = $("routes").tBodies[0];
  body.replaceChildren();
  const traffic = new Map((stats.routes || []).map((r) => [r.listener + "/" + r.route, r]));
  for (const listener of (config.config && config.config.listeners) || []) {
    for (const route of listener.routes || []) {
      const row = body.insertRow();
      row.dataset.route = route.name;
      cell(row, listener.name + " " + (listener.address || ""));
      cell(row, route.name);
      cell(row, describeMatch(route.match));
      cell(row, route.cluster ? "cluster " + route.cluster : route.directResponse ? "direct " + route.directResponse.status : "");
      cell(row, describePolicies(route));
      const t = traffic.get(listener.name + "/" + route.name);
      cell(row, t ? t.requestsPerSecond.toFixed(1) : "0");
      cell(row, t && t.errorRate !== null ? (t.errorRate * 100).toFixed(0) + "%" : "–", t && t.errorRate > 0 ? "bad" : "");
      cell(row, formatMs(t && t.p50Ms));
      cell(row, formatMs(t && t.p99Ms));
    }
  }
}

function renderClusters(clusters) {
  const body = $("clusters").tBodies[0];
  body.replaceChildren();
  for (const c of (clusters && clusters.clusters) || []) {
    const row = body.insertRow();
    row.dataset.cluster = c.name;
    cell(row, c.name);
    const state = c.circuitBreaker.state;
    const td = cell(row, state, "state-" + state);
    td.dataset.breaker = state;
    cell(row, c.inFlight + " (+" + c.pending + " waiting)");
    cell(row, c.retryBudget.available + " left");
    const list = row.insertCell();
    for (const e of c.endpoints) {
      const div = document.createElement("div");
      const ejected = e.outlier && e.outlier.ejected;
      div.textContent = e.url + " — " + (e.healthy ? "healthy" : "unhealthy") + (ejected ? ", ejected" : "") + (e.active ? "" : ", standby");
      div.className = e.healthy ? "good" : "bad";
      list.appendChild(div);
    }
  }
}

function renderErrors(requests) {
  const body = $("errors").tBodies[0];
  body.replaceChildren();
  for (const r of (requests && requests.requests) || []) {
    const row = body.insertRow();
    cell(row, new Date(r.at).toLocaleTimeString());
    cell(row, r.method + " " + r.path);
    cell(row, r.route);
    cell(row, r.status, "bad");
    cell(row, r.error || "");
    const link = document.createElement("a");
    link.href = "/requests/" + encodeURIComponent(r.requestId);
    link.textContent = r.requestId;
    link.addEventListener("click", async (event) => {
      // With a token, the link is followed with it.
      if (!token) return;
      event.preventDefault();
      const detail = await get(link.getAttribute("href"));
      const w = window.open("", "_blank");
      if (w) w.document.body.textContent = JSON.stringify(detail, null, 2);
    });
    row.insertCell().appendChild(link);
  }
}

function renderReloads(config, stats) {
  const last = config.lastReload;
  const counts = stats.config.reloads;
  $("reloads").textContent = (last ? "last: " + last.result + " at " + last.at + (last.error ? " — " + last.error : "") : "no reload since start") +
    " · " + counts.success + " succeeded, " + counts.failure + " failed";
}

/**
 * Per route, two small charts over the last HISTORY_POINTS seconds: traffic (requests/s, 5xx
 * share) and latency (p50, p99). The caption states the last values in words: a canvas is not
 * read by a screen reader.
 */
const TRAFFIC_SERIES = [{}, { label: "req/s", stroke: "#1a5fb4" }, { label: "5xx %", stroke: "#a4000f", scale: "pct" }];
const LATENCY_SERIES = [{}, { label: "p50 ms", stroke: "#0b6b2b" }, { label: "p99 ms", stroke: "#7a4b00" }];

function chartsFor(key) {
  let entry = charts.get(key);
  if (entry) return entry;
  const box = document.createElement("figure");
  box.className = "chart";
  box.dataset.route = key;
  const title = document.createElement("h3");
  title.textContent = key;
  box.appendChild(title);
  $("charts").appendChild(box);
  const width = Math.max(260, Math.min(420, box.clientWidth || 320));
  const plot = (kind, options, columns) => {
    const holder = document.createElement("div");
    holder.dataset.chart = kind;
    box.appendChild(holder);
    return new uPlot(Object.assign({ width, height: 140, title: kind === "traffic" ? "requests/s and 5xx share" : "latency p50 and p99" }, options), columns, holder);
  };
  const traffic = plot("traffic", { scales: { x: { time: true }, pct: { range: [0, 100] } }, series: TRAFFIC_SERIES, axes: [{}, {}, { scale: "pct", side: 1 }] }, [[], [], []]);
  const latency = plot("latency", { scales: { x: { time: true } }, series: LATENCY_SERIES, axes: [{}, { label: "ms" }] }, [[], [], []]);
  const caption = document.createElement("figcaption");
  box.appendChild(caption);
  entry = { traffic, latency, caption };
  charts.set(key, entry);
  return entry;
}

function recordSeries(stats) {
  const now = Date.now() / 1000;
  for (const r of stats.routes || []) {
    if (!r.route) continue;
    const key = r.listener + "/" + r.route;
    let s = series.get(key);
    if (!s) { s = [[], [], [], [], []]; series.set(key, s); }
    s[0].push(now); s[1].push(r.requestsPerSecond); s[2].push(r.errorRate === null ? null : r.errorRate * 100); s[3].push(r.p50Ms); s[4].push(r.p99Ms);
    if (s[0].length > HISTORY_POINTS) for (const column of s) column.shift();
    const entry = chartsFor(key);
    entry.traffic.setData([s[0], s[1], s[2]]);
    entry.latency.setData([s[0], s[3], s[4]]);
    entry.caption.textContent = r.requestsPerSecond.toFixed(1) + " req/s · " + (r.errorRate === null ? "–" : (r.errorRate * 100).toFixed(0) + "%") + " 5xx · p50 " + formatMs(r.p50Ms) + " · p99 " + formatMs(r.p99Ms);
  }
}

async function refresh() {
  try {
    const [stats, clusters, config, errors] = await Promise.all([get("/stats"), get("/clusters"), get("/config"), get("/requests?status=5xx&limit=10")]);
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("status").textContent = (stats.ready ? "ready" : "not ready") + " · up " + stats.uptimeSeconds + "s · updated " + new Date().toLocaleTimeString();
    renderRoutes(config, stats);
    renderClusters(clusters);
    renderErrors(errors);
    renderReloads(config, stats);
    recordSeries(stats);
  } catch (error) {
    if (error.unauthorized) { showLogin(token ? "that token was refused" : ""); return; }
    $("status").textContent = "cannot read the admin API: " + error.message;
  }
}

refresh();
setInterval(() => { if ($("login").hidden) refresh(); }, 1000);
</script>
</body>
</html>
`;
