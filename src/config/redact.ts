const SECRET_KEYS = new Set(['token', 'password', 'secret']);
const REDACTED = '<redacted>';

/**
 * The config as written, with secrets replaced: tokens, and any value that holds PEM key
 * material. TLS `cert`/`key` fields are file paths and stay visible. The one redaction: the
 * compiler applies it to the snapshot's document, and /config applies it again (idempotent)
 * to whatever it shows.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value === 'string') return value.includes('PRIVATE KEY') ? REDACTED : value;
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.has(k) ? REDACTED : redactSecrets(v);
  return out;
}
