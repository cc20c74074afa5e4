/**
 * The schema of the configuration file: one zod schema, strict everywhere (an unknown key
 * is an error, so a misspelt `retyr:` cannot silently disable retries).
 *
 * The schema is the documentation: every field's description says what it does and its
 * default, and both the JSON Schema for editors (json-schema.ts) and the config reference
 * are generated from it. It validates the document as written and transforms nothing:
 * durations stay `5s`, sizes stay `64KiB`, defaults are not filled in. Compiling into the
 * runtime snapshot (ms, bytes, defaults, absolute paths) is load.ts's job, so the JSON
 * Schema describes exactly what a user types.
 *
 * Checks between fields of one object (exactly one of `cluster`/`directResponse`, backoff
 * base <= max, ...) are refinements here. They run even when a sibling field is invalid
 * (`when: always`) so that every error is reported at once; they therefore read the value
 * defensively. Checks across objects (route → cluster references, duplicate names) are in
 * load.ts.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { parseEgressRule } from './egress';
import { z } from 'zod';
import { parseCidr } from './cidr';
import * as D from './defaults';
import { normalizePath } from '../core/path';
import { routeRegexError } from './route-regex';
import { formatDurationMs, parseDurationMs, parseSizeBytes } from './units';

// ---------------------------------------------------------------------------------------
// Value grammars shared with load.ts
// ---------------------------------------------------------------------------------------

/** The grammar of units.ts, for editors (JSON Schema `pattern`). */
export const DURATION_PATTERN_TEXT = '^\\s*\\d+(\\.\\d+)?(ms|s|m|h)\\s*$';
export const SIZE_PATTERN_TEXT = '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][iI]?[bB]|[bB])?\\s*$';

/** RFC 9110 token: header names and methods. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What Node accepts in a header value (no CR, LF or NUL: no header injection from config). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;
const PATH = /^\/[^\s?#]*$/;

export interface HostPort {
  /** Without brackets for IPv6 (what `net.Server.listen` expects). */
  readonly host: string;
  readonly port: number;
}

/** `host:port` or `[v6]:port`, port 0..65535. Returns the error text on failure. */
export function parseAddress(text: string): HostPort | string {
  const bad = (why: string): string => `invalid address ${show(text)}: ${why}`;
  const bracketed = /^\[([^\]]*)\]:(\d+)$/.exec(text);
  let host: string;
  let portText: string;
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (!isIPv6(host)) return bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) {
      if (/^\d+$/.test(text)) return `address ${show(text)} has no host: write 0.0.0.0:${text} (every interface) or 127.0.0.1:${text} (this machine only)`;
      return bad('missing port: use host:port, e.g. 127.0.0.1:8080');
    }
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return bad('put IPv6 addresses in brackets, e.g. [::1]:8080');
    if (host === '') return bad('missing host: use host:port, e.g. 0.0.0.0:8080');
    if (!isIPv4(host) && !HOSTNAME.test(host)) return bad(`"${host}" is not an IP address or host name`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return bad('the port must be 0..65535');
  return { host: host.toLowerCase(), port: Number(portText) };
}

export interface EndpointAddress extends HostPort {
  /** `http://host:port` or `https://host:port` (IPv6 in brackets), lower-case. */
  readonly origin: string;
  /** An https:// endpoint: reached over TLS. */
  readonly tls: boolean;
}

/**
 * An upstream endpoint: `http://host:port` or `https://host:port` with an explicit port and
 * nothing after it. An https endpoint is reached over TLS (clusters[].tls).
 */
export function parseEndpointUrl(text: string): EndpointAddress | string {
  const bad = (why: string): string => `invalid endpoint URL ${show(text)}: ${why}`;
  const schemeMatch = /^(https?):\/\//i.exec(text);
  if (!schemeMatch) return bad('use http://host:port or https://host:port');
  const scheme = schemeMatch[1].toLowerCase();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return bad(`not a URL; use ${scheme}://host:port`);
  }
  if (url.username !== '' || url.password !== '') return bad('credentials in the URL are not allowed');
  if (url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '')) {
    return bad(`no path, query or fragment: an endpoint is ${scheme}://host:port only (use rewritePrefix on the route for paths)`);
  }
  // The WHATWG parser drops a default port (":80", ":443"), so presence is read from the text.
  const authority = /^https?:\/\/([^/?#]*)/i.exec(text)?.[1] ?? '';
  const portMatch = /:(\d+)$/.exec(authority);
  if (!portMatch) return bad(`missing port: use ${scheme}://host:port, e.g. ${scheme === 'https' ? 'https://payments.example:443' : 'http://127.0.0.1:3000'}`);
  const port = Number(portMatch[1]);
  if (port < 1 || port > 65535) return bad('the port must be 1..65535');
  const hostname = url.hostname.toLowerCase();
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  return { host, port, origin: `${scheme}://${hostname}:${port}`, tls: scheme === 'https' };
}

/** A short, safe rendering of a user value for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') {
    const cut = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(cut);
  }
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}`;
}

const ms = formatDurationMs;

// ---------------------------------------------------------------------------------------
// Field builders
// ---------------------------------------------------------------------------------------

interface RawIssueLike {
  readonly input?: unknown;
}

/** Leaves "required" to the generic message: the schema-level text is for present values. */
const unlessMissing =
  (message: (input: unknown) => string) =>
  (issue: RawIssueLike): string | undefined =>
    issue.input === undefined ? undefined : message(issue.input);

const durationMessage = (input: unknown): string =>
  typeof input === 'string' && parseDurationMs(input) === 0
    ? `invalid duration ${show(input)}: must be greater than 0`
    : `invalid duration ${show(input)}: use a number with ms, s, m or h, e.g. 250ms, 5s, 1m`;

function duration(options: { allowZero: boolean } = { allowZero: false }) {
  return z
    .string({ error: unlessMissing(durationMessage) })
    .refine(
      (text) => {
        const value = parseDurationMs(text);
        return value !== undefined && (options.allowZero || value > 0);
      },
      { error: unlessMissing(durationMessage) },
    )
    .meta({ pattern: DURATION_PATTERN_TEXT, examples: ['250ms', '5s', '1m'] });
}

const sizeMessage = (input: unknown): string =>
  `invalid size ${show(input)}: use a number of bytes or a number with B, KB, MB, GB, KiB, MiB or GiB, e.g. 64KiB, 10MiB`;

function size() {
  const error = unlessMissing(sizeMessage);
  return z
    .union(
      [
        z.int({ error }).min(0, { error }),
        z
          .string({ error })
          .refine((text) => parseSizeBytes(text) !== undefined, { error })
          .meta({ pattern: SIZE_PATTERN_TEXT }),
      ],
      { error },
    )
    .meta({ examples: ['64KiB', '10MiB', 1024] });
}

function name(what: string) {
  return z
    .string()
    .max(100, { error: `a ${what} name is at most 100 characters` })
    .regex(NAME, {
      error: unlessMissing(
        (input) => `invalid ${what} name ${show(input)}: use letters, digits and _ . : - (starting with a letter or digit)`,
      ),
    });
}

function address() {
  return z.string().superRefine((text, ctx) => {
    const parsed = parseAddress(text);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed, input: text });
  });
}

const headerName = z
  .string()
  .regex(TOKEN, { error: unlessMissing((input) => `invalid header name ${show(input)}: use letters, digits and -`) });

const headerValue = z
  .string({
    error: unlessMissing((input) =>
      typeof input === 'number' || typeof input === 'boolean'
        ? `header values are strings: quote it ("${String(input)}")`
        : `expected a string header value, got ${show(input)}`,
    ),
  })
  .regex(HEADER_VALUE, { error: 'header values cannot contain line breaks or control characters' });

const method = z
  .string()
  .regex(TOKEN, { error: unlessMissing((input) => `invalid HTTP method ${show(input)}`) });

const urlPath = (what: string) =>
  z
    .string()
    .regex(PATH, {
      error: unlessMissing((input) => `invalid ${what} ${show(input)}: must start with / and contain no spaces, ? or #`),
    })
    .superRefine((text, ctx) => {
      // Requests are matched after normalisation, so a path written otherwise could never match.
      const normalized = PATH.test(text) ? normalizePath(text) : undefined;
      if (normalized === undefined || (normalized.ok && normalized.path === text)) return;
      const message = normalized.ok
        ? `${what} ${show(text)} is not in normal form; request paths are normalised before matching, so write ${show(normalized.path)}`
        : `invalid ${what} ${show(text)}: ${normalized.reason}`;
      ctx.addIssue({ code: 'custom', input: text, message });
    });

const hostPattern = z.string().superRefine((text, ctx) => {
  const bare = text.startsWith('*.') ? text.slice(2) : text;
  const ok = /^\[[0-9A-Fa-f:.]+\]$/.test(bare) ? isIPv6(bare.slice(1, -1)) : HOSTNAME.test(bare);
  if (!ok) {
    const why = text.includes(':') && !text.startsWith('[') ? ' (no port: the port is ignored when matching)' : '';
    ctx.addIssue({
      code: 'custom',
      input: text,
      message: `invalid host ${show(text)}: use a host name such as api.example.com or *.example.com${why}`,
    });
  }
});

const filePath = (what: string) =>
  z.string().min(1, { error: `the ${what} path cannot be empty` });

const cidr = z.string().superRefine((text, ctx) => {
  const parsed = parseCidr(text);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message, input: text });
});

/** Runs object refinements even when a field of the object failed (see the file comment). */
const always = { when: (): boolean => true };

type Loose = Record<string, unknown>;
const isLoose = (value: unknown): value is Loose =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function exactlyOne(keys: readonly string[], where: string) {
  return (value: unknown, ctx: z.RefinementCtx<unknown>): void => {
    if (!isLoose(value)) return;
    const present = keys.filter((k) => value[k] !== undefined);
    const list = keys.map((k) => `\`${k}\``).join(', ');
    if (present.length === 0) {
      ctx.addIssue({ code: 'custom', message: `${where} needs exactly one of ${list}; none is set`, input: value });
    } else if (present.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [present[1]],
        message: `${where} needs exactly one of ${list}; both \`${present[0]}\` and \`${present[1]}\` are set`,
        input: value,
      });
    }
  };
}

const oneOfRequired = (keys: readonly string[]) => ({ oneOf: keys.map((k) => ({ required: [k] })) });

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

const adminSchema = z
  .strictObject({
    address: address()
      .optional()
      .describe(
        `host:port of the admin API (/ready /live /metrics /stats /config /clusters /reload). Keep it on loopback. Default ${D.DEFAULT_ADMIN_ADDRESS}.`,
      ),
    token: z
      .string()
      .min(1, { error: 'the admin token cannot be empty' })
      .optional()
      .describe(
        'Bearer token required by every admin endpoint except /live and /ready; required when `address` is not a loopback address. Default: none (no authentication; rely on the loopback address).',
      ),
    recorder: z
      .union([
        z.literal(false),
        z.strictObject({
          requests: z
            .int()
            .min(0)
            .max(100_000)
            .optional()
            .describe(`The last requests kept (any outcome). Default ${D.DEFAULT_RECORDER_REQUESTS}.`),
          failures: z
            .int()
            .min(0)
            .max(100_000)
            .optional()
            .describe(`The last failures (5xx or a sidecar error) kept besides, however many successes follow. Default ${D.DEFAULT_RECORDER_FAILURES}.`),
          maxBytes: size().describe(`Bound on the memory of what is kept, shared by the two lists in proportion to their lengths; past its share a list drops its oldest entries first. Default ${formatBytes(D.DEFAULT_RECORDER_MAX_BYTES)}.`).optional(),
          redactHeaders: z
            .array(headerName)
            .optional()
            .describe(`More header names whose values are recorded as "[redacted]"; ${D.RECORDER_ALWAYS_REDACTED_HEADERS.join(', ')} always are. Bodies are never recorded. Default: none.`),
        }),
      ])
      .optional()
      .describe('The flight recorder behind GET /requests and GET /requests/{x-request-id}: each request\'s route, attempts and decisions. false turns it off (nothing is recorded, no cost per request). Default: on with the defaults of its fields.'),
  })
  .describe('The admin API. Default: enabled on ' + D.DEFAULT_ADMIN_ADDRESS + ' without a token.');

const sniSchema = z
  .strictObject({
    serverNames: z
      .array(hostPattern)
      .min(1, { error: 'serverNames needs at least one name' })
      .describe('Server names (SNI) this certificate is for; `*.example.com` matches one label. Required.'),
    cert: filePath('certificate').describe('PEM certificate chain file, relative to this file. Required.'),
    key: filePath('key').describe('PEM private key file, relative to this file. Required.'),
  })
  .describe('An extra certificate chosen by the server name the client asks for.');

const tlsSchema = z
  .strictObject({
    cert: filePath('certificate').describe('PEM certificate chain file, relative to this file. Required.'),
    key: filePath('key').describe('PEM private key file, relative to this file. Required.'),
    clientCa: filePath('client CA')
      .optional()
      .describe('PEM CA bundle: when set, clients must present a certificate it signed (mTLS). Default: none (no client certificates).'),
    sni: z
      .array(sniSchema)
      .optional()
      .describe('More certificates, chosen by server name; `cert`/`key` are the fallback. Default: none.'),
  })
  .describe('Terminate TLS (HTTPS and HTTP/2). Omit for plain HTTP.');

const matchSchema = z
  .strictObject({
    path: urlPath('path').optional().describe('Exact request path (query string excluded). One of path, prefix or regex.'),
    prefix: urlPath('prefix')
      .optional()
      .describe('Path prefix, e.g. /api (matches /api and /api/..., plain string prefix). One of path, prefix or regex.'),
    regex: z
      .string()
      .min(1, { error: 'the regex cannot be empty' })
      .superRefine((source, ctx) => {
        const problem = routeRegexError(source);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', input: source, message: `invalid regex ${show(source)}: ${problem}` });
      })
      .optional()
      .describe(
        'RE2 regular expression (linear-time matching: no backreferences or lookaround) tested against the path (query string excluded); unanchored, so use ^ and $. One of path, prefix or regex.',
      ),
    methods: z
      .array(method)
      .min(1, { error: 'methods needs at least one method; omit it to match any method' })
      .optional()
      .describe('Methods to match (case-insensitive). Default: any method.'),
    headers: z
      .record(headerName, headerValue)
      .optional()
      .describe('Request headers that must be present with exactly these values (names case-insensitive). Default: none.'),
    host: hostPattern
      .optional()
      .describe('Host (without port, case-insensitive) to match; `*.example.com` matches any subdomain. Default: any host.'),
  })
  .superRefine(exactlyOne(['path', 'prefix', 'regex'], 'match'), always)
  .meta(oneOfRequired(['path', 'prefix', 'regex']))
  .describe('What a request must look like for this route to apply. Exactly one of path, prefix or regex.');

const RETRY_ON_VALUES = [
  '5xx',
  'gateway-error',
  'connect-failure',
  'reset',
  'retriable-4xx',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;

const backoffSchema = z
  .strictObject({
    base: duration({ allowZero: true })
      .optional()
      .describe(`First backoff; each retry doubles it, with full jitter. Default ${ms(D.DEFAULT_BACKOFF_BASE_MS)}.`),
    max: duration({ allowZero: true })
      .optional()
      .describe(`Upper bound of one backoff. Default ${ms(D.DEFAULT_BACKOFF_MAX_MS)}.`),
  })
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    const base = typeof value.base === 'string' ? parseDurationMs(value.base) : D.DEFAULT_BACKOFF_BASE_MS;
    const max = typeof value.max === 'string' ? parseDurationMs(value.max) : D.DEFAULT_BACKOFF_MAX_MS;
    if (base !== undefined && max !== undefined && base > max) {
      ctx.addIssue({
        code: 'custom',
        path: [value.base !== undefined ? 'base' : 'max'],
        message: `backoff base (${ms(base)}) must not exceed max (${ms(max)})`,
        input: value,
      });
    }
  }, always)
  .describe(
    `Wait between tries: exponential from base, capped at max. Default { base: ${ms(D.DEFAULT_BACKOFF_BASE_MS)}, max: ${ms(D.DEFAULT_BACKOFF_MAX_MS)} }.`,
  );

const retrySchema = z
  .strictObject({
    attempts: z
      .int()
      .min(0)
      .max(10)
      .optional()
      .describe(
        `Retries after the first try (0 disables retries). Default ${D.DEFAULT_RETRY_ATTEMPTS} when this section is present; without the section, ${D.DEFAULT_RETRY_ATTEMPTS_WITHOUT_POLICY}.`,
      ),
    on: z
      .array(z.enum(RETRY_ON_VALUES))
      .min(1, { error: 'on needs at least one condition' })
      .optional()
      .describe(
        'Conditions that trigger a retry: 5xx (any 5xx response, and every failure that gets no response: connect failure, reset, per-try timeout, malformed response), ' +
          'gateway-error (502, 503 and 504 responses, and the same failures as 5xx, as in Envoy), ' +
          'connect-failure, reset (connection closed before a response), retriable-4xx (409), ' +
          'retriable-status-codes (the codes in statusCodes); for gRPC calls, cancelled, deadline-exceeded, internal, resource-exhausted and unavailable (the grpc-status of an answer that has no body, i.e. trailers-only; gRPC calls are POSTs, and these retry them whatever `methods` says). ' +
          `Default [${D.DEFAULT_RETRY_ON.join(', ')}].`,
      ),
    statusCodes: z
      .array(z.int().min(100).max(599))
      .optional()
      .describe('Response statuses retried by `retriable-status-codes` (which must be in `on`). Default: none.'),
    perTryTimeout: duration()
      .optional()
      .describe('Timeout of each try; must not exceed the route timeout. Default: none (a try may use what is left of the route timeout).'),
    backoff: backoffSchema.optional(),
    methods: z
      .array(method)
      .min(1, { error: 'methods needs at least one method' })
      .optional()
      .describe(`Methods that may be retried. Default [${D.DEFAULT_RETRY_METHODS.join(', ')}] (idempotent only).`),
    idempotencyKey: z
      .boolean()
      .optional()
      .describe(`true: also retry requests of other methods when they carry an Idempotency-Key header. Default ${D.DEFAULT_RETRY_IDEMPOTENCY_KEY}.`),
    maxBodyBytes: size()
      .optional()
      .describe(
        `Request bodies up to this size are buffered for replay; larger requests are never retried. Default ${formatBytes(D.DEFAULT_RETRY_MAX_BODY_BYTES)}.`,
      ),
  })
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    const on = Array.isArray(value.on) ? value.on : D.DEFAULT_RETRY_ON;
    const hasCodes = Array.isArray(value.statusCodes) && value.statusCodes.length > 0;
    const wantsCodes = on.includes('retriable-status-codes');
    if (hasCodes && !wantsCodes) {
      ctx.addIssue({
        code: 'custom',
        path: ['statusCodes'],
        message: 'statusCodes are only used with `retriable-status-codes` in `on`; add it there',
        input: value.statusCodes,
      });
    }
    if (wantsCodes && !hasCodes) {
      ctx.addIssue({
        code: 'custom',
        path: ['on'],
        message: '`retriable-status-codes` needs a non-empty statusCodes list',
        input: value.on,
      });
    }
  }, always)
  .describe(
    `Retry policy of the route. Without this section requests are tried once; with it, defaults are attempts ${D.DEFAULT_RETRY_ATTEMPTS}, on [${D.DEFAULT_RETRY_ON.join(', ')}].`,
  );

const headerMutationSchema = (direction: string) =>
  z
    .strictObject({
      add: z
        .record(headerName, headerValue)
        .optional()
        .describe(`Headers set on the ${direction} (replacing a header of the same name). Default: none.`),
      remove: z
        .array(headerName)
        .optional()
        .describe(`Header names removed from the ${direction}. Default: none.`),
    })
    .describe(`Header changes on the ${direction}. Default: none.`);

const directResponseSchema = z
  .strictObject({
    status: z.int().min(100).max(599).describe('HTTP status of the answer. Required.'),
    body: z.string().optional().describe('Body of the answer. Default: empty.'),
    contentType: z
      .string()
      .regex(HEADER_VALUE, { error: 'contentType cannot contain line breaks or control characters' })
      .optional()
      .describe(`Content-Type of the answer. Default ${D.DEFAULT_DIRECT_RESPONSE_CONTENT_TYPE}.`),
  })
  .describe('Answer directly from the sidecar without contacting a cluster. Exactly one of cluster, directResponse, redirect or weightedClusters.');

export const CLUSTER_ONLY_ROUTE_KEYS = ['rewritePrefix', 'hostRewrite', 'timeout', 'retry', 'websocket', 'rateLimit', 'fault', 'mirror', 'access', 'cors', 'auth', 'compression'] as const;

/** `type/subtype` or `type/*` (lower or upper case; parameters are not part of a pattern). */
const MEDIA_RANGE = /^[A-Za-z0-9!#$&^_.+-]+\/(\*|[A-Za-z0-9!#$&^_.+-]+)$/;

const compressionSchema = z
  .strictObject({
    algorithms: z
      .array(z.enum(['br', 'gzip', 'zstd']))
      .min(1, { error: 'algorithms needs at least one algorithm' })
      .optional()
      .describe(`Encodings offered, in the server's order of preference for a client that likes several equally (zstd only where the running Node has it). Default [${D.DEFAULT_COMPRESSION_ALGORITHMS.join(', ')}].`),
    minBytes: size()
      .optional()
      .describe(`Responses with a smaller Content-Length are sent as they are (a response of unknown length is compressed). Default ${formatBytes(D.DEFAULT_COMPRESSION_MIN_BYTES)}.`),
    contentTypes: z
      .array(z.string().regex(MEDIA_RANGE, { error: unlessMissing((input) => `invalid content type ${show(input)}: write type/subtype or type/*`) }))
      .min(1, { error: 'contentTypes needs at least one type' })
      .optional()
      .describe(`Response types compressed (text/event-stream never is: compressing it would hold events back). Default [${D.DEFAULT_COMPRESSION_CONTENT_TYPES.join(', ')}].`),
  })
  .describe('Compress responses for clients that accept it (Accept-Encoding with q-values), streaming, with backpressure; never a response already encoded, a range, a no-transform one or a small one. Adds Vary: Accept-Encoding and weakens the ETag. Default: none.');

/** Signature algorithms a JWT may use: asymmetric only (`none` and the HMAC ones, which need a shared secret, are never accepted). */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const httpUrl = (what: string) =>
  z.string().superRefine((text, ctx) => {
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', input: text, message: `invalid ${what} ${show(text)}: use an http:// or https:// URL without user information` });
    }
  });

const jwksSchema = z
  .strictObject({
    url: httpUrl('JWKS url').optional().describe('Where the JSON Web Key Set is fetched (the issuer\'s jwks_uri). Exactly one of url or file.'),
    file: filePath('JWKS file').optional().describe('A JSON Web Key Set file, read at load (an unreadable or invalid file is a config error) and again when it changes. Exactly one of url or file.'),
    refreshInterval: duration()
      .optional()
      .describe(`How old the fetched keys may get before a request triggers a refresh in the background; a token with an unknown kid triggers one at once, at most once per ${ms(D.JWKS_UNKNOWN_KID_COOLDOWN_MS)}. A failed refresh keeps the last good keys. Default ${ms(D.DEFAULT_JWKS_REFRESH_INTERVAL_MS)}.`),
    timeout: duration().optional().describe(`Time allowed to fetch the key set. Default ${ms(D.DEFAULT_JWKS_TIMEOUT_MS)}.`),
  })
  .superRefine(exactlyOne(['url', 'file'], 'jwks'), always)
  .meta(oneOfRequired(['url', 'file']))
  .describe('The issuer\'s public keys. Required.');

const jwtSchema = z
  .strictObject({
    issuer: z.string().min(1, { error: 'issuer cannot be empty' }).describe('The `iss` every token must carry. Required.'),
    audiences: z
      .array(z.string().min(1, { error: 'an audience cannot be empty' }))
      .min(1, { error: 'audiences needs at least one audience' })
      .describe('A token\'s `aud` must name one of these. Required.'),
    jwks: jwksSchema,
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS))
      .min(1, { error: 'algorithms needs at least one algorithm' })
      .optional()
      .describe(`Signature algorithms accepted (asymmetric only: none and HS256 are never accepted). Default [${JWT_ALGORITHMS.join(', ')}].`),
    clockSkew: duration({ allowZero: true })
      .optional()
      .describe(`Tolerance on exp and nbf for clocks that disagree. Default ${ms(D.DEFAULT_JWT_CLOCK_SKEW_MS)}.`),
    claimsToHeaders: z
      .record(z.string().min(1), headerName)
      .optional()
      .describe('Claims copied into request headers for the app, e.g. { sub: x-user-id }; objects and arrays as JSON. A client-sent header of one of these names is always removed first. Default: none.'),
    forwardToken: z
      .boolean()
      .optional()
      .describe(`true: the Authorization header reaches the app; false: it is removed once verified. Default ${D.DEFAULT_JWT_FORWARD_TOKEN}.`),
  })
  .describe('Bearer JWTs verified by the sidecar (signature, exp/nbf, iss, aud); a missing or bad token gets 401 UNAUTHENTICATED with WWW-Authenticate. One of jwt, basic or external.');

const basicSchema = z
  .strictObject({
    usersFile: filePath('usersFile').describe('An htpasswd file of bcrypt hashes (user:$2y$...), read at load and again when it changes; any other kind of line is a config error. Required.'),
    realm: z
      .string()
      .regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/, { error: 'realm is printable ASCII without quotes or backslashes' })
      .optional()
      .describe('The realm the browser shows. Default: the route name.'),
  })
  .describe('HTTP Basic authentication against bcrypt hashes; a missing or wrong password gets 401 UNAUTHENTICATED with WWW-Authenticate: Basic. One of jwt, basic or external.');

const externalSchema = z
  .strictObject({
    url: httpUrl('external auth url').describe('The authorization service; the request\'s path is appended to the URL\'s path (after pathPrefix). Required.'),
    timeout: duration().optional().describe(`Time allowed for its answer. Default ${ms(D.DEFAULT_EXTERNAL_AUTH_TIMEOUT_MS)}.`),
    pathPrefix: urlPath('pathPrefix').optional().describe('Put before the request\'s path in the check request. Default: none.'),
    requestHeaders: z
      .array(headerName)
      .optional()
      .describe(`Request headers sent to the service. Default [${D.DEFAULT_EXTERNAL_AUTH_REQUEST_HEADERS.join(', ')}].`),
    responseHeaders: z
      .array(headerName)
      .optional()
      .describe('Headers of the service\'s 2xx answer added to the request to the app (client-sent ones of these names are always removed). Default: none.'),
    failureMode: z
      .enum(['deny', 'allow'])
      .optional()
      .describe(`When the service times out or cannot be reached: deny (503 AUTH_UNAVAILABLE) or allow (the request goes on unchecked). Default ${D.DEFAULT_EXTERNAL_AUTH_FAILURE_MODE}.`),
    cacheFor: duration({ allowZero: true })
      .optional()
      .describe('How long a decision is reused for the same requestHeaders values (0s: never). Default 0s.'),
  })
  .describe('Ask an authorization service (forwardAuth / ext_authz over HTTP) with the method, path and chosen headers: 2xx lets the request through, any other answer is returned to the client as sent. One of jwt, basic or external.');

const authSchema = z
  .strictObject({
    jwt: jwtSchema.optional(),
    basic: basicSchema.optional(),
    external: externalSchema.optional(),
  })
  .superRefine(exactlyOne(['jwt', 'basic', 'external'], 'auth'), always)
  .meta(oneOfRequired(['jwt', 'basic', 'external']))
  .describe('Authentication of the route\'s requests (one of jwt, basic, external). Default: none (the app authenticates).');

/** A value of a certificate's subjectAltName: a URI (SPIFFE id), DNS name, email or IP, as written in the certificate. */
const SAN_VALUE = /^[\x21-\x7e]+$/;

const accessSchema = z
  .strictObject({
    allow: z
      .array(cidr)
      .optional()
      .describe('CIDR blocks of peer addresses admitted (the connection\'s address, never X-Forwarded-For). Default: any address not denied.'),
    deny: z
      .array(cidr)
      .optional()
      .describe('CIDR blocks of peer addresses refused, even when `allow` admits them. Default: none.'),
    clientCertSans: z
      .array(
        z.string().regex(SAN_VALUE, {
          error: unlessMissing((input) => `invalid certificate SAN ${show(input)}: write the value alone (spiffe://..., a DNS name, an email or an IP), without spaces`),
        }),
      )
      .min(1, { error: 'clientCertSans needs at least one name (leave it out to admit any client)' })
      .optional()
      .describe(
        'The mTLS client certificate must carry one of these subjectAltName values (a SPIFFE id such as spiffe://cluster.local/ns/billing/sa/billing, a DNS name, an email or an IP); needs a listener with tls.clientCa. Default: no certificate check.',
      ),
  })
  .describe('Who may use the route; a refused client gets 403 ACCESS_DENIED. Every list given must admit the client. Default: everyone.');

/** `https://app.example`, `http://localhost:3000`, `*`, or `*.example.com`. */
const ORIGIN = /^(\*|\*\.[A-Za-z0-9.-]+|https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?|https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?)$/;

const corsSchema = z
  .strictObject({
    allowOrigins: z
      .array(
        z.string().regex(ORIGIN, {
          error: unlessMissing(
            (input) => `invalid origin ${show(input)}: write scheme://host[:port] with no path (https://app.example), * for any, or *.example.com for its subdomains`,
          ),
        }),
      )
      .min(1, { error: 'allowOrigins needs at least one origin' })
      .describe('Origins allowed to call the route from a browser: exact (https://app.example), * (any) or *.example.com (any subdomain, any scheme and port). Required.'),
    allowMethods: z
      .array(method)
      .optional()
      .describe(`Methods a preflight may ask for. Default [${D.DEFAULT_CORS_ALLOW_METHODS.join(', ')}].`),
    allowHeaders: z
      .array(headerName)
      .optional()
      .describe('Request headers a preflight may ask for (beyond the CORS-safelisted ones). Default: none.'),
    exposeHeaders: z
      .array(headerName)
      .optional()
      .describe('Response headers the page may read (beyond the CORS-safelisted ones). Default: none.'),
    maxAge: duration({ allowZero: true })
      .optional()
      .describe(`How long a browser may cache a preflight answer (whole seconds). Default ${ms(D.DEFAULT_CORS_MAX_AGE_MS)}.`),
    allowCredentials: z
      .boolean()
      .optional()
      .describe(`true: the page may send cookies and Authorization; never together with a * origin. Default ${D.DEFAULT_CORS_ALLOW_CREDENTIALS}.`),
  })
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    if (value.allowCredentials === true && Array.isArray(value.allowOrigins) && value.allowOrigins.includes('*')) {
      ctx.addIssue({
        code: 'custom',
        path: ['allowCredentials'],
        message: 'allowCredentials cannot go with the origin "*" (browsers refuse it, and it would let any site act as the user); list the origins',
        input: value.allowCredentials,
      });
    }
  }, always)
  .describe('Cross-origin requests from browsers: the sidecar answers preflights itself (the app never sees them) and adds the Access-Control-* headers and Vary: Origin to responses. Default: none (CORS headers are the app\'s).');

const redirectSchema = z
  .strictObject({
    scheme: z.enum(['http', 'https']).optional().describe('Scheme of the target. Default: the request\'s.'),
    host: z
      .string()
      .regex(HOSTNAME, { error: unlessMissing((input) => `invalid redirect host ${show(input)}: a host name without port (use port)`) })
      .optional()
      .describe('Host of the target. Default: the request\'s.'),
    port: z
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe('Port of the target; left out of the Location when it is the scheme\'s default. Default: the request\'s port, or the scheme\'s default when the scheme changes.'),
    path: urlPath('redirect path').optional().describe('Path of the target, replacing the whole path. Default: the request\'s.'),
    prefixRewrite: urlPath('redirect prefixRewrite')
      .optional()
      .describe('Replaces the matched `prefix` of the path (prefix matches only). Default: the path unchanged.'),
    status: z
      .union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], {
        error: 'a redirect status is one of 301, 302, 303, 307, 308',
      })
      .optional()
      .describe(`Status of the redirect. Default ${D.DEFAULT_REDIRECT_STATUS} (method and body kept).`),
  })
  .superRefine((value, ctx) => {
    if (isLoose(value) && value.path !== undefined && value.prefixRewrite !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['prefixRewrite'], message: 'a redirect has path or prefixRewrite, not both', input: value.prefixRewrite });
    }
  }, always)
  .describe('Answer with a redirect to the request\'s URL with the given parts replaced (the query is kept), e.g. { scheme: https } for HTTP to HTTPS. Exactly one of cluster, directResponse, redirect or weightedClusters.');


const websocketSchema = z
  .strictObject({
    idleTimeout: duration()
      .optional()
      .describe(
        `A tunnel with no byte in either direction for this long is closed (both sockets). Default ${ms(D.DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS)}.`,
      ),
  })
  .describe(
    'WebSocket tunnels opened through this route (requests with Upgrade: websocket are routed like any request). Default: idleTimeout only.',
  );

/** `client`, `route` or `header:<name>`: what a request is counted or hashed by. */
export function parseRequestKey(text: string): { kind: 'client' } | { kind: 'route' } | { kind: 'header'; header: string } | undefined {
  if (text === 'client') return { kind: 'client' };
  if (text === 'route') return { kind: 'route' };
  if (text.startsWith('header:') && TOKEN.test(text.slice(7))) return { kind: 'header', header: text.slice(7).toLowerCase() };
  return undefined;
}

const requestKey = (what: string, choices: readonly string[]) =>
  z.string().refine((text) => {
    const key = parseRequestKey(text);
    return key !== undefined && choices.includes(key.kind);
  }, {
    error: unlessMissing(
      (input) => `invalid ${what} ${show(input)}: use ${choices.map((c) => (c === 'header' ? 'header:<name> (e.g. header:x-api-key)' : c)).join(', ')}`,
    ),
  });

const percent = (what: string) =>
  z
    .number({ error: unlessMissing((input) => `${what} must be a number from 0 to 100, got ${show(input)}`) })
    .min(0, { error: `${what} must be from 0 to 100` })
    .max(100, { error: unlessMissing((input) => `${what} must be from 0 to 100 (a share of requests), got ${show(input)}`) });

const weightedClusterSchema = z
  .strictObject({
    cluster: name('cluster').describe('A cluster defined under `clusters`. Required.'),
    weight: z
      .int({ error: unlessMissing((input) => `weight must be a whole number, got ${show(input)}`) })
      .min(0, { error: 'weight must be 0 or more' })
      .describe('Share of the requests, relative to the other weights (0: none). Required.'),
  })
  .describe('One side of a weighted split.');

const mirrorSchema = z
  .strictObject({
    cluster: name('cluster').describe('The shadow cluster (defined under `clusters`, not the route\'s own). Required.'),
    percent: percent('mirror.percent')
      .optional()
      .describe(`Share of requests copied, 0 to 100. Default ${D.DEFAULT_MIRROR_PERCENT}.`),
    maxBodyBytes: size()
      .optional()
      .describe(`Request bodies up to this size are copied; a request with a larger body is not mirrored (counted as body_too_large). Default ${formatBytes(D.DEFAULT_MIRROR_MAX_BODY_BYTES)}.`),
  })
  .describe(
    `Send a copy of requests to a shadow cluster, fire-and-forget, marked x-sidecar-shadow: true: its answer, latency and failures never change the client's response. At most ${D.MIRROR_MAX_IN_FLIGHT_REQUESTS} copies per route in flight. Default: none.`,
  );

const rateLimitSchema = z
  .strictObject({
    requests: z
      .int({ error: unlessMissing((input) => `requests must be a whole number of requests, got ${show(input)}`) })
      .min(1, { error: 'requests must be at least 1' })
      .describe('Requests allowed per `per`, the bucket\'s refill rate. Required.'),
    per: duration().describe('The period of `requests`, e.g. 1s or 1m. Required.'),
    burst: z
      .int()
      .min(0)
      .optional()
      .describe(`Requests a quiet key may send at once on top of \`requests\` (the bucket holds requests + burst). Default ${D.DEFAULT_RATE_LIMIT_BURST_REQUESTS}.`),
    key: requestKey('rate limit key', ['client', 'route', 'header'])
      .optional()
      .describe(
        `What a bucket counts: client (the peer address, or the client address in X-Forwarded-For when the peer is a trusted proxy), route (one bucket for the route), header:<name> (the header's value; requests without it share one bucket). Default ${D.DEFAULT_RATE_LIMIT_KEY}.`,
      ),
    maxKeys: z
      .int()
      .min(1)
      .optional()
      .describe(`Buckets kept for distinct keys; beyond, the least recently used is forgotten (counted in sidecar_rate_limit_evictions_total). Default ${D.DEFAULT_RATE_LIMIT_MAX_KEYS}.`),
  })
  .describe('Local rate limit (token bucket) of the route: over it, 429 RATE_LIMITED with Retry-After, RateLimit-Policy and RateLimit; the app sees nothing. With workers, the limit holds for the whole sidecar. Default: none.');

const faultSchema = z
  .strictObject({
    delay: z
      .strictObject({
        duration: duration().describe('Delay added before the request goes on. Required.'),
        percent: percent('delay.percent').describe('Share of eligible requests delayed, 0 to 100. Required.'),
      })
      .optional()
      .describe('Delay a share of requests (it counts against the route timeout). Default: none.'),
    abort: z
      .strictObject({
        status: z
          .int()
          .min(200, { error: 'abort.status must be an HTTP status from 200 to 599' })
          .max(599, { error: 'abort.status must be an HTTP status from 200 to 599' })
          .optional()
          .describe(`Status answered, with x-sidecar-error: FAULT_ABORT. Default ${D.DEFAULT_FAULT_ABORT_STATUS}.`),
        percent: percent('abort.percent').describe('Share of eligible requests aborted, 0 to 100. Required.'),
      })
      .optional()
      .describe('Answer a share of requests without reaching the app. Default: none.'),
    header: headerName
      .optional()
      .describe('When set, only requests carrying this header are eligible; a value from 0 to 100 replaces both percentages. Default: every request is eligible.'),
  })
  .superRefine((value, ctx) => {
    if (isLoose(value) && value.delay === undefined && value.abort === undefined) {
      ctx.addIssue({ code: 'custom', message: 'fault needs `delay`, `abort` or both', input: value });
    }
  }, always)
  .describe('Fault injection for chaos tests: delay and/or abort a share of requests; flagged FI in the access log. Default: none.');

const routeSchema = z
  .strictObject({
    name: name('route').describe('Route name, unique within the listener; a label in metrics and logs. Required.'),
    match: matchSchema,
    cluster: name('cluster')
      .optional()
      .describe('Forward matching requests to this cluster (defined under `clusters`). Exactly one of cluster, directResponse, redirect or weightedClusters.'),
    directResponse: directResponseSchema.optional(),
    weightedClusters: z
      .array(weightedClusterSchema)
      .min(1, { error: 'weightedClusters needs at least one cluster' })
      .optional()
      .describe('Forward each request to one of these clusters, in proportion to their weights (canary, blue/green). Exactly one of cluster, directResponse, redirect or weightedClusters.'),
    hashOn: requestKey('hashOn', ['client', 'header'])
      .optional()
      .describe('With weightedClusters: keep one client (client) or one header value (header:<name>) on one side of the split, by hashing it. Default: each request drawn at random.'),
    redirect: redirectSchema.optional(),
    rewritePrefix: urlPath('rewritePrefix')
      .optional()
      .describe('Replace the matched `prefix` with this before forwarding (prefix matches only). Default: path unchanged.'),
    hostRewrite: z
      .string()
      .refine((text) => text === 'auto' || HOSTNAME.test(text), { error: 'hostRewrite is auto or a host name' })
      .optional()
      .describe(
        "Host header sent upstream: auto sends the endpoint's host (what a remote API expects, port omitted when it is the scheme's default), a name sends that name. Default: the client's Host.",
      ),
    timeout: duration()
      .optional()
      .describe(`Deadline of the whole request, all tries and backoffs included. Default ${ms(D.DEFAULT_ROUTE_TIMEOUT_MS)}.`),
    retry: retrySchema.optional(),
    maxRequestBodyBytes: size()
      .optional()
      .describe(
        `Larger request bodies are answered with 413 REQUEST_TOO_LARGE. Default ${formatBytes(D.DEFAULT_MAX_REQUEST_BODY_BYTES)}.`,
      ),
    requestHeaders: headerMutationSchema('request to the upstream').optional(),
    responseHeaders: headerMutationSchema('response to the client').optional(),
    websocket: websocketSchema.optional(),
    rateLimit: rateLimitSchema.optional(),
    fault: faultSchema.optional(),
    mirror: mirrorSchema.optional(),
    access: accessSchema.optional(),
    cors: corsSchema.optional(),
    auth: authSchema.optional(),
    compression: compressionSchema.optional(),
  })
  .superRefine(exactlyOne(['cluster', 'directResponse', 'redirect', 'weightedClusters'], 'a route'), always)
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    if (Array.isArray(value.weightedClusters)) {
      const entries = value.weightedClusters.filter(isLoose);
      if (entries.length > 0 && entries.every((e) => e.weight === 0)) {
        ctx.addIssue({ code: 'custom', path: ['weightedClusters'], message: 'every weight of weightedClusters is 0: no request could be sent; give at least one cluster a weight', input: value.weightedClusters });
      }
      const seen = new Set<unknown>();
      entries.forEach((e, i) => {
        if (seen.has(e.cluster)) ctx.addIssue({ code: 'custom', path: ['weightedClusters', i, 'cluster'], message: `cluster ${show(e.cluster)} is listed twice in weightedClusters; add the weights up`, input: e.cluster });
        seen.add(e.cluster);
      });
    }
    if (value.hashOn !== undefined && value.weightedClusters === undefined) {
      ctx.addIssue({ code: 'custom', path: ['hashOn'], message: 'hashOn on a route keeps clients on one side of weightedClusters; this route has none (for endpoints, set loadBalancer: hash and hashOn on the cluster)', input: value.hashOn });
    }
    if ((value.directResponse !== undefined || value.redirect !== undefined) && value.cluster === undefined && value.weightedClusters === undefined) {
      for (const key of CLUSTER_ONLY_ROUTE_KEYS) {
        if (value[key] !== undefined) {
          ctx.addIssue({ code: 'custom', path: [key], message: `${key} only applies to routes with a cluster`, input: value[key] });
        }
      }
    }
    if (isLoose(value.redirect) && value.redirect.prefixRewrite !== undefined && isLoose(value.match) && value.match.prefix === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['redirect', 'prefixRewrite'],
        message: 'redirect.prefixRewrite needs a `prefix` match (it replaces the matched prefix)',
        input: value.redirect.prefixRewrite,
      });
    }
    if (value.rewritePrefix !== undefined && isLoose(value.match) && value.match.prefix === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rewritePrefix'],
        message: 'rewritePrefix needs a `prefix` match (it replaces the matched prefix)',
        input: value.rewritePrefix,
      });
    }
    const timeout = typeof value.timeout === 'string' ? parseDurationMs(value.timeout) : D.DEFAULT_ROUTE_TIMEOUT_MS;
    const perTry = isLoose(value.retry) && typeof value.retry.perTryTimeout === 'string' ? parseDurationMs(value.retry.perTryTimeout) : undefined;
    if (timeout !== undefined && perTry !== undefined && perTry > timeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['retry', 'perTryTimeout'],
        message: `perTryTimeout (${ms(perTry)}) exceeds the route timeout (${ms(timeout)}); a try can never last longer than the route`,
        input: perTry,
      });
    }
  }, always)
  .meta(oneOfRequired(['cluster', 'directResponse', 'redirect', 'weightedClusters']))
  .describe('A route: requests matching `match` go to `cluster` (or one of `weightedClusters`), get `directResponse`, or get a `redirect`. The first matching route wins.');

/** Largest maxHeaderCount: Node's HTTP/1 parser keeps at most 1 000 headers (2 000 raw entries) by default; more would only cost memory. */
const MAX_HEADER_COUNT_LIMIT = 1000;

const pathMatchingSchema = z
  .strictObject({
    caseInsensitive: z
      .boolean()
      .optional()
      .describe(
        `true: path, prefix and regex routes ignore ASCII case (/ADMIN matches prefix /admin); the app still receives the path as sent. Default ${D.DEFAULT_PATH_MATCHING_CASE_INSENSITIVE}.`,
      ),
    rejectPathParameters: z
      .boolean()
      .optional()
      .describe(
        `true: a path holding ";" (path parameters, /x/..;/admin, /admin;jsessionid=1) gets 400 BAD_REQUEST, because servlet containers strip them before routing. false: forwarded, ";" is an ordinary character to the routes, but a "." or ".." segment with parameters is still refused. Default ${D.DEFAULT_PATH_MATCHING_REJECT_PATH_PARAMETERS}.`,
      ),
  })
  .describe('How request paths are compared with the routes. Default: case-sensitive, path parameters refused.');

const forwardProxySchema = z
  .strictObject({
    allow: z
      .array(
        z.string().superRefine((text, ctx) => {
          const rule = parseEgressRule(text);
          if (typeof rule === 'string') ctx.addIssue({ code: 'custom', message: rule, input: text });
        }),
      )
      .min(1, { error: 'forwardProxy.allow needs at least one destination: host[:port] or *.domain[:port]' })
      .describe('Destinations CONNECT may tunnel to: host, *.domain (names under it) or IP address, each with an optional :port (without one, any port). Any other destination gets 403 EGRESS_DENIED. Required.'),
    connectTimeout: duration()
      .optional()
      .describe(`Time allowed to open the connection to a CONNECT destination; beyond, 503 UPSTREAM_CONNECT_FAILURE. Default ${ms(D.DEFAULT_FORWARD_PROXY_CONNECT_TIMEOUT_MS)}.`),
    idleTimeout: duration()
      .optional()
      .describe(`Silence allowed on a tunnel (not a byte either way) before both sides are closed. Default ${ms(D.DEFAULT_FORWARD_PROXY_IDLE_TIMEOUT_MS)}.`),
  })
  .describe(
    'HTTP_PROXY mode: absolute-form requests (GET http://host/path) are routed by host like any other, and CONNECT host:port opens a tunnel (not decrypted) to an allowed destination. Default: off (CONNECT gets 405).',
  );

const listenerSchema = z
  .strictObject({
    name: name('listener').describe('Listener name, unique; a label in metrics and logs. Required.'),
    address: address().describe('host:port to listen on, e.g. 0.0.0.0:8443 or [::]:8443; port 0 picks a free port. Required.'),
    trustedProxies: z
      .array(cidr)
      .optional()
      .describe(
        'CIDR blocks (IPv4 or IPv6) of peers whose X-Forwarded-For/-Proto/-Host are appended to; from other peers they are replaced. Default: none.',
      ),
    tls: tlsSchema.optional(),
    forwardProxy: forwardProxySchema.optional(),
    routes: z
      .array(routeSchema)
      .min(1, { error: 'a listener needs at least one route' })
      .describe('Routes, tried in order; the first match wins. No match: 404 NO_ROUTE. Required.'),
    maxHeaderBytes: size()
      .optional()
      .describe(`Largest request header block; larger gets 431. Default ${formatBytes(D.DEFAULT_LISTENER_MAX_HEADER_BYTES)}.`),
    headersTimeout: duration()
      .optional()
      .describe(`Time allowed to receive the request headers. Default ${ms(D.DEFAULT_LISTENER_HEADERS_TIMEOUT_MS)}.`),
    requestTimeout: duration({ allowZero: true })
      .optional()
      .describe(
        `Time allowed to receive the whole request, body included; 0s disables. Must not be less than headersTimeout. Default ${ms(D.DEFAULT_LISTENER_REQUEST_TIMEOUT_MS)}.`,
      ),
    keepAliveTimeout: duration()
      .optional()
      .describe(
        `Idle time before a client keep-alive connection is closed; keep it longer than the idle timeout of a load balancer in front. Default ${ms(D.DEFAULT_LISTENER_KEEP_ALIVE_TIMEOUT_MS)}.`,
      ),
    maxConnections: z
      .int()
      .min(1)
      .optional()
      .describe(
        `Client connections accepted at once; more are refused. From ${D.LISTENER_NEAR_CAPACITY_PERCENT}% of it on, connections that have not sent a byte for ${ms(D.SILENT_CONNECTION_TIMEOUT_NEAR_CAPACITY_MS)} are closed to make room. Default ${D.DEFAULT_LISTENER_MAX_CONNECTIONS}.`,
      ),
    maxConnectionsPerPeer: z
      .int()
      .min(1)
      .optional()
      .describe(
        `Client connections one peer address may hold at once; more from it are closed at accept. Peers in trustedProxies are exempt (a load balancer in front carries many clients). Default: a tenth of maxConnections, at least ${D.MIN_DEFAULT_LISTENER_MAX_CONNECTIONS_PER_PEER} (${D.defaultMaxConnectionsPerPeer(D.DEFAULT_LISTENER_MAX_CONNECTIONS)} with the default maxConnections).`,
      ),
    maxHeaderCount: z
      .int()
      .min(1)
      .max(MAX_HEADER_COUNT_LIMIT)
      .optional()
      .describe(
        `Request header fields allowed in one request (HTTP/2 pseudo-headers not counted); more gets 431 HEADERS_TOO_LARGE and is never forwarded. Default ${D.DEFAULT_LISTENER_MAX_HEADER_COUNT}.`,
      ),
    headersWithUnderscores: z
      .enum(['drop', 'reject', 'allow'])
      .optional()
      .describe(
        `Request headers whose names contain "_" (X_Forwarded_For reads as X-Forwarded-For to CGI/WSGI apps): drop (not forwarded, counted in sidecar_request_headers_dropped_total), reject (400 BAD_REQUEST naming the header) or allow (forwarded). Default ${D.DEFAULT_LISTENER_HEADERS_WITH_UNDERSCORES}.`,
      ),
    pathMatching: pathMatchingSchema.optional(),
    escapedSlashes: z
      .enum(['keep', 'reject', 'unescape-and-redirect'])
      .optional()
      .describe(
        `A request path holding an encoded slash or backslash (%2F, %5C): keep (forwarded as sent; routes read it as one character of a segment), reject (400 BAD_REQUEST) or unescape-and-redirect (a redirect to the decoded, normalised path, so /public/..%2Fadmin meets the routes as /admin). Choose reject or unescape-and-redirect when routes allow or deny by path and the app decodes %2F. Default ${D.DEFAULT_LISTENER_ESCAPED_SLASHES}.`,
      ),
    protocols: z
      .array(z.enum(['http1', 'h2c']))
      .min(1, { error: 'protocols needs at least one of http1, h2c' })
      .optional()
      .describe(
        `What a plain listener serves on its port: http1 (HTTP/1.1) and h2c (HTTP/2 with prior knowledge, told apart by its connection preface, as gRPC clients send it). A TLS listener offers HTTP/2 and HTTP/1.1 by ALPN and takes no h2c. Default [${D.DEFAULT_LISTENER_PROTOCOLS.join(', ')}].`,
      ),
  })
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    if (Array.isArray(value.protocols)) {
      if (new Set(value.protocols).size !== value.protocols.length) {
        ctx.addIssue({ code: 'custom', path: ['protocols'], message: 'protocols lists a protocol twice', input: value.protocols });
      }
      if (value.tls !== undefined && value.protocols.includes('h2c')) {
        ctx.addIssue({
          code: 'custom',
          path: ['protocols'],
          message: 'h2c is HTTP/2 without TLS; a tls listener already offers HTTP/2 by ALPN: remove h2c, or remove tls',
          input: value.protocols,
        });
      }
    }
    const headers = typeof value.headersTimeout === 'string' ? parseDurationMs(value.headersTimeout) : D.DEFAULT_LISTENER_HEADERS_TIMEOUT_MS;
    const request = typeof value.requestTimeout === 'string' ? parseDurationMs(value.requestTimeout) : D.DEFAULT_LISTENER_REQUEST_TIMEOUT_MS;
    // Node refuses to start a server whose requestTimeout is below its headersTimeout.
    if (headers !== undefined && request !== undefined && request !== 0 && request < headers) {
      ctx.addIssue({
        code: 'custom',
        path: [value.requestTimeout !== undefined ? 'requestTimeout' : 'headersTimeout'],
        message: `requestTimeout (${ms(request)}) must not be less than headersTimeout (${ms(headers)})`,
        input: value,
      });
    }
  }, always)
  .describe('A port the sidecar accepts requests on, with its routes.');

const endpointSchema = z
  .strictObject({
    url: z
      .string()
      .superRefine((text, ctx) => {
        const parsed = parseEndpointUrl(text);
        if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed, input: text });
      })
      .describe(
        'http://host:port of one instance of the app (usually on localhost), or https://host:port of a remote service, reached over TLS (see the cluster\'s tls). A host name is resolved (see dnsRefresh) and each of its addresses is an endpoint. Required.',
      ),
    priority: z
      .int()
      .min(0)
      .optional()
      .describe(
        `Failover tier: endpoints of priority N are used only while no endpoint of a lower priority is healthy. Default ${D.DEFAULT_ENDPOINT_PRIORITY}.`,
      ),
  })
  .describe('One upstream instance.');

const circuitBreakerSchema = z
  .strictObject({
    errorThresholdPercentage: z
      .number()
      .min(1)
      .max(100)
      .optional()
      .describe(
        `Failure percentage (connect errors, timeouts, 5xx; never 4xx) within the window that opens the circuit. Default ${D.DEFAULT_CB_ERROR_THRESHOLD_PERCENT}.`,
      ),
    volumeThreshold: z
      .int()
      .min(0)
      .optional()
      .describe(`Requests needed in the window before the circuit may open. Default ${D.DEFAULT_CB_VOLUME_THRESHOLD_REQUESTS}.`),
    window: duration().optional().describe(`Rolling window of the failure statistics. Default ${ms(D.DEFAULT_CB_WINDOW_MS)}.`),
    resetTimeout: duration()
      .optional()
      .describe(`Time an open circuit waits before letting a trial request through (half-open). Default ${ms(D.DEFAULT_CB_RESET_TIMEOUT_MS)}.`),
    maxConcurrentRequests: z
      .int()
      .min(1)
      .optional()
      .describe(`Requests in flight to the cluster at once; beyond, requests wait. Default ${D.DEFAULT_CB_MAX_CONCURRENT_REQUESTS}.`),
    maxPendingRequests: z
      .int()
      .min(0)
      .optional()
      .describe(`Requests allowed to wait for a slot or for a connection to an endpoint; beyond, 503 OVERLOADED. Default ${D.DEFAULT_CB_MAX_PENDING_REQUESTS}.`),
  })
  .describe('Circuit breaker and concurrency limits of the cluster. Always on; every field has a default.');

const healthCheckSchema = z
  .strictObject({
    path: urlPath('health check path').describe('Path requested with GET on each endpoint; 2xx is healthy. Required.'),
    interval: duration().optional().describe(`Time between checks of one endpoint. Default ${ms(D.DEFAULT_HEALTH_CHECK_INTERVAL_MS)}.`),
    timeout: duration()
      .optional()
      .describe(`Time a check may take; must not exceed interval. Default ${ms(D.DEFAULT_HEALTH_CHECK_TIMEOUT_MS)}.`),
    unhealthyThreshold: z
      .int()
      .min(1)
      .optional()
      .describe(`Consecutive failed checks that mark an endpoint unhealthy. Default ${D.DEFAULT_HEALTH_CHECK_UNHEALTHY_THRESHOLD_COUNT}.`),
    healthyThreshold: z
      .int()
      .min(1)
      .optional()
      .describe(`Consecutive passed checks that mark an endpoint healthy again. Default ${D.DEFAULT_HEALTH_CHECK_HEALTHY_THRESHOLD_COUNT}.`),
  })
  .superRefine((value, ctx) => {
    if (!isLoose(value)) return;
    const interval = typeof value.interval === 'string' ? parseDurationMs(value.interval) : D.DEFAULT_HEALTH_CHECK_INTERVAL_MS;
    const timeout = typeof value.timeout === 'string' ? parseDurationMs(value.timeout) : D.DEFAULT_HEALTH_CHECK_TIMEOUT_MS;
    if (interval !== undefined && timeout !== undefined && timeout > interval) {
      ctx.addIssue({
        code: 'custom',
        path: [value.timeout !== undefined ? 'timeout' : 'interval'],
        message: `health check timeout (${ms(timeout)}) must not exceed interval (${ms(interval)})`,
        input: value,
      });
    }
  }, always)
  .describe('Active health checks. Default: none (endpoints are assumed healthy; outlier detection may still eject them).');

const outlierDetectionSchema = z
  .strictObject({
    consecutive5xx: z
      .int()
      .min(1)
      .optional()
      .describe(`Consecutive failed attempts (5xx response, connect failure, reset or timeout) that eject an endpoint. Default ${D.DEFAULT_OUTLIER_CONSECUTIVE_5XX_COUNT}.`),
    baseEjectionTime: duration()
      .optional()
      .describe(`Ejection time, multiplied by the number of times the endpoint was ejected. Default ${ms(D.DEFAULT_OUTLIER_BASE_EJECTION_TIME_MS)}.`),
  })
  .describe('Passive health: eject endpoints that keep failing real requests. Default: off.');

const retryBudgetSchema = z
  .strictObject({
    ratio: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe(`Retries may add at most this share of the cluster's requests. Default ${D.DEFAULT_RETRY_BUDGET_RATIO}.`),
    minPerSecond: z
      .int()
      .min(0)
      .optional()
      .describe(`Retries per second always allowed, whatever the ratio. Default ${D.DEFAULT_RETRY_BUDGET_MIN_PER_SECOND}.`),
  })
  .describe(
    `Cap on retries so they cannot multiply load during an outage. Always on; default { ratio: ${D.DEFAULT_RETRY_BUDGET_RATIO}, minPerSecond: ${D.DEFAULT_RETRY_BUDGET_MIN_PER_SECOND} }.`,
  );

const upstreamTlsSchema = z
  .strictObject({
    ca: filePath('CA')
      .optional()
      .describe('PEM CA bundle the endpoints\' certificates must chain to, relative to this file. Default: the system roots.'),
    cert: filePath('certificate')
      .optional()
      .describe('PEM client certificate chain presented to endpoints that ask for one (mTLS), relative to this file. With key. Default: none.'),
    key: filePath('key').optional().describe('PEM private key of cert, relative to this file. With cert. Default: none.'),
    serverName: z
      .string()
      .regex(HOSTNAME, { error: 'serverName must be a host name' })
      .optional()
      .describe('Name sent as SNI and verified against the endpoint\'s certificate. Default: the endpoint\'s host.'),
    minVersion: z
      .enum(['TLSv1.2', 'TLSv1.3'])
      .optional()
      .describe(`Lowest TLS version offered. Default ${D.DEFAULT_UPSTREAM_TLS_MIN_VERSION}.`),
  })
  .superRefine((value, ctx) => {
    if ((value.cert === undefined) !== (value.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [value.cert === undefined ? 'cert' : 'key'], message: 'cert and key go together: set both for a client certificate, or neither', input: value });
    }
  })
  .describe(
    'TLS to the https:// endpoints: the certificate is always verified (there is no option to turn that off); the files reload on change. Default for https:// endpoints: system roots, SNI and verified name from the endpoint\'s host, no client certificate.',
  );

const clusterSchema = z
  .strictObject({
    name: name('cluster').describe('Cluster name, unique; routes refer to it. Required.'),
    endpoints: z
      .array(endpointSchema)
      .min(1, { error: 'a cluster needs at least one endpoint' })
      .describe('Instances of the app; requests are balanced over the healthy ones of the lowest priority. Required.'),
    connectTimeout: duration()
      .optional()
      .describe(`Time allowed to open a connection to an endpoint. Default ${ms(D.DEFAULT_CONNECT_TIMEOUT_MS)}.`),
    idleTimeout: duration()
      .optional()
      .describe(
        `Idle time before a kept-alive upstream connection is closed; keep it shorter than the app's keep-alive timeout. Default ${ms(D.DEFAULT_IDLE_TIMEOUT_MS)}.`,
      ),
    maxConnections: z
      .int()
      .min(1)
      .optional()
      .describe(`Open connections to each endpoint at most. Default ${D.DEFAULT_MAX_CONNECTIONS}.`),
    dnsRefresh: duration()
      .optional()
      .describe(
        `Time between resolutions of the endpoints' host names: every A and AAAA record of a name is an endpoint; a connect failure resolves again sooner; a failed resolution keeps the last good addresses. Endpoints given by IP address are not resolved. Default ${ms(D.DEFAULT_DNS_REFRESH_MS)}.`,
      ),
    protocol: z
      .enum(['http1', 'http2'])
      .optional()
      .describe(
        `How requests reach the endpoints: http1 (HTTP/1.1), or http2 (HTTP/2: with prior knowledge to http:// endpoints, negotiated by ALPN with https:// ones; streams share a few connections, within the app's SETTINGS_MAX_CONCURRENT_STREAMS). gRPC apps need http2. Default ${D.DEFAULT_CLUSTER_PROTOCOL}.`,
      ),
    maxResponseHeaderBytes: size()
      .optional()
      .describe(
        `Largest response header block accepted from an endpoint; larger is answered 502 UPSTREAM_PROTOCOL_ERROR. Default ${formatBytes(D.DEFAULT_MAX_RESPONSE_HEADER_BYTES)}, the listener's maxHeaderBytes default.`,
      ),
    circuitBreaker: circuitBreakerSchema.optional(),
    healthCheck: healthCheckSchema.optional(),
    outlierDetection: outlierDetectionSchema.optional(),
    retryBudget: retryBudgetSchema.optional(),
    tls: upstreamTlsSchema.optional(),
    loadBalancer: z
      .enum(['round-robin', 'least-request', 'random', 'hash'])
      .optional()
      .describe(
        `How requests are spread over the healthy endpoints of a priority level: round-robin, least-request (fewest attempts in flight; a slow endpoint gets less), random, or hash (consistent hashing on hashOn: one key stays on one endpoint, and only the keys of an endpoint that leaves move). Default ${D.DEFAULT_LOAD_BALANCER}.`,
      ),
    hashOn: requestKey('hashOn', ['client', 'header'])
      .optional()
      .describe(`What loadBalancer: hash hashes: client (its address, as rateLimit's key) or header:<name> (requests without it share one key). Default ${D.DEFAULT_HASH_ON}.`),
  })
  .superRefine((value, ctx) => {
    if (value.hashOn !== undefined && value.loadBalancer !== 'hash') {
      ctx.addIssue({ code: 'custom', path: ['hashOn'], message: 'hashOn is only used with loadBalancer: hash; add it, or remove hashOn', input: value.hashOn });
    }
  })
  .superRefine((value, ctx) => {
    if (value.tls === undefined) return;
    const plain = value.endpoints.findIndex((e) => {
      const parsed = parseEndpointUrl(e.url);
      return typeof parsed !== 'string' && !parsed.tls;
    });
    if (plain >= 0) {
      ctx.addIssue({ code: 'custom', path: ['endpoints', plain, 'url'], message: 'tls applies to https:// endpoints: write this endpoint as https://host:port, or remove tls', input: value.endpoints[plain].url });
    }
  })
  .describe('A group of app instances that routes forward to.');

const tracingSchema = z
  .strictObject({
    serviceName: z
      .string()
      .min(1, { error: 'serviceName cannot be empty' })
      .optional()
      .describe(`service.name of the spans. Default ${D.DEFAULT_TRACING_SERVICE_NAME}.`),
    exporter: z
      .enum(['otlp-http', 'otlp-grpc', 'console', 'none'])
      .optional()
      .describe(
        `Where spans go: otlp-http (collector :4318), otlp-grpc (:4317), console, or none. Default ${D.DEFAULT_TRACING_EXPORTER} when this section is present.`,
      ),
    endpoint: z
      .url({ protocol: /^https?$/, error: unlessMissing((input) => `invalid tracing endpoint ${show(input)}: use an http:// or https:// URL`) })
      .optional()
      .describe('Collector URL, e.g. http://127.0.0.1:4318. Default: the exporter\'s own default or the OTEL_EXPORTER_OTLP_* variables.'),
    sampleRatio: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe(`Share of new traces sampled (0..1); a sampled parent is always followed. Default ${D.DEFAULT_TRACING_SAMPLE_RATIO}.`),
    propagators: z
      .array(z.enum(['tracecontext', 'baggage', 'b3']))
      .optional()
      .describe(`Trace context formats read from and written to requests. Default [${D.DEFAULT_TRACING_PROPAGATORS.join(', ')}].`),
    responseHeader: z
      .boolean()
      .optional()
      .describe(`true: responses carry the trace id. Default ${D.DEFAULT_TRACING_RESPONSE_HEADER}.`),
  })
  .describe(`OpenTelemetry tracing. Without this section tracing exports nothing (exporter ${D.DEFAULT_TRACING_EXPORTER_WITHOUT_SECTION}).`);

const accessLogSchema = z
  .strictObject({
    path: z
      .string()
      .min(1, { error: 'the access log path cannot be empty' })
      .optional()
      .describe(`stdout, stderr, off, or a file path (relative to this file). JSON lines. Default ${D.DEFAULT_ACCESS_LOG_PATH}.`),
    query: z
      .enum(['keep', 'drop'])
      .optional()
      .describe(
        `Whether the request's query string is kept in the access log's \`path\`, in span attributes (url.query, url.full) and in the recent errors \`sidecar status\` shows: ` +
          `drop (\`/login?code=abc\` is logged as \`/login\`) or keep. Default ${D.DEFAULT_ACCESS_LOG_QUERY}: query strings often carry secrets ` +
          '(OAuth codes, signed-URL signatures, API keys, reset tokens), and logs and traces are kept longer and read by more people than the requests were.',
      ),
  })
  .describe(`Access log, one JSON line per request. Default { path: ${D.DEFAULT_ACCESS_LOG_PATH} }.`);

const drainSchema = z
  .strictObject({
    delay: duration({ allowZero: true })
      .optional()
      .describe(`After SIGTERM, time to report not-ready before draining, so load balancers stop sending. Default ${ms(D.DEFAULT_DRAIN_DELAY_MS)}.`),
    timeout: duration({ allowZero: true })
      .optional()
      .describe(`Then, time given to in-flight requests before connections are closed. Default ${ms(D.DEFAULT_DRAIN_TIMEOUT_MS)}.`),
  })
  .describe(`Graceful shutdown. Default { delay: ${ms(D.DEFAULT_DRAIN_DELAY_MS)}, timeout: ${ms(D.DEFAULT_DRAIN_TIMEOUT_MS)} }.`);

const workersMessage = (input: unknown): string => `invalid workers ${show(input)}: use a whole number from 1 to 1024, or auto`;

export const configSchema = z
  .strictObject({
    admin: adminSchema.optional(),
    listeners: z
      .array(listenerSchema)
      .min(1, { error: 'at least one listener is needed' })
      .describe('Ports the sidecar accepts requests on. Required.'),
    clusters: z
      .array(clusterSchema)
      .optional()
      .describe('Upstream clusters that routes forward to. Default: none (only directResponse routes).'),
    tracing: tracingSchema.optional(),
    accessLog: accessLogSchema.optional(),
    drain: drainSchema.optional(),
    workers: z
      .union([z.int({ error: unlessMissing(workersMessage) }).min(1).max(1024), z.literal('auto')], {
        error: unlessMissing(workersMessage),
      })
      .optional()
      .describe(
        `Processes serving the listeners (node:cluster), or auto for one per core. With 2 or more, a primary process owns the config, reloads, signals and the admin listener; breakers, retry budgets, health checks and outlier detection are per worker. Read at start. Default ${D.DEFAULT_WORKERS}.`,
      ),
  })
  .describe('sidecar configuration: listeners and their routes, upstream clusters, tracing, logging and shutdown.');

/** The document as written and validated (durations and sizes still text, defaults not applied). */
export type ConfigDocument = z.output<typeof configSchema>;
export type RouteDocument = z.output<typeof routeSchema>;
export type ClusterDocument = z.output<typeof clusterSchema>;
export type ListenerDocument = z.output<typeof listenerSchema>;
