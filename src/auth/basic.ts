import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { parseHtpasswd } from '../config/route-files';
import type { BasicAuth } from '../config/types';
import type { Logger } from '../telemetry/logger';
import { FileSource } from './file-source';
import { credentials, quoted, PASS_WITHOUT_HEADERS, type Authenticator, type AuthOutcome, type AuthRequest } from './outcome';

/** Verified user:password pairs remembered, so a client that sends its password on every request pays bcrypt once. */
const MAX_REMEMBERED = 1024;
/** Compared against for an unknown user, so that a missing user takes as long as a wrong password. */
const UNKNOWN_USER_HASH = bcrypt.hashSync('unknown user', 10);

/**
 * `routes[].auth.basic`: HTTP Basic against the bcrypt hashes of an htpasswd file (re-read
 * when it changes). The Authorization header never reaches the app: the password is the
 * sidecar's business.
 */
export class BasicAuthenticator implements Authenticator {
  readonly strip: ReadonlySet<string> = new Set(['authorization']);
  private readonly users: FileSource<[string, string][]>;
  private readonly challenge: string;
  /** Keys: sha256 of user, password and the hash they matched (a changed hash misses). */
  private readonly remembered = new Set<string>();

  constructor(private readonly policy: BasicAuth) {
    this.users = new FileSource(policy.usersFile, policy.users.map(([user, hash]) => [user, hash]), parseHtpasswd);
    this.challenge = `Basic realm=${quoted(policy.realm)}, charset="UTF-8"`;
  }

  async check({ req }: AuthRequest, logger: Logger): Promise<AuthOutcome> {
    const encoded = credentials(req, 'basic');
    if (encoded === undefined) return this.refuse('the request carries no Basic credentials');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return this.refuse('the Basic credentials are malformed');
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const entries = this.users.current((message) => logger.warn({ file: this.policy.usersFile }, message));
    const hash = entries.find(([name]) => name === user)?.[1];
    const key = createHash('sha256').update(`${user}\u0000${password}\u0000${hash ?? ''}`).digest('base64');
    if (hash !== undefined && this.remembered.has(key)) return PASS_WITHOUT_HEADERS;
    const matches = await bcrypt.compare(password, hash ?? UNKNOWN_USER_HASH);
    if (!matches || hash === undefined) return this.refuse('the user name or password is wrong');
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.clear();
    this.remembered.add(key);
    return PASS_WITHOUT_HEADERS;
  }

  private refuse(message: string): AuthOutcome {
    return { kind: 'deny', code: 'UNAUTHENTICATED', message, headers: ['www-authenticate', this.challenge] };
  }
}
