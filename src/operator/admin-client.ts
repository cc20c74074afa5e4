import { request } from 'undici';

/** A request from a CLI command to the admin listener; the answer's status and text. */
export interface AdminAnswer {
  readonly status: number;
  readonly body: string;
}

export const ADMIN_CLIENT_TIMEOUT_MS = 10_000;

export class AdminUnreachable extends Error {}

export function adminBase(url: string): string {
  return (/^https?:\/\//.test(url) ? url : `http://${url}`).replace(/\/+$/, '');
}

export async function callAdmin(base: string, path: string, options: { token?: string; method?: 'GET' | 'POST'; body?: string } = {}): Promise<AdminAnswer> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined && options.token !== '') headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/yaml';
  try {
    const res = await request(base + path, {
      method: options.method ?? 'GET',
      headers,
      body: options.body,
      headersTimeout: ADMIN_CLIENT_TIMEOUT_MS,
      bodyTimeout: ADMIN_CLIENT_TIMEOUT_MS,
    });
    const body = await res.body.text();
    if (res.statusCode === 401) throw new AdminUnreachable(`the admin listener at ${base} requires a token: pass --token or set SIDECAR_ADMIN_TOKEN`);
    return { status: res.statusCode, body };
  } catch (error) {
    if (error instanceof AdminUnreachable) throw error;
    throw new AdminUnreachable(`cannot reach the admin listener at ${base}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
