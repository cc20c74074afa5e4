import { formatConfigErrors, loadConfigFile } from '../config/load';
import { ExplainInputError, explainRequest, parseHeaderArgument, type Explanation } from '../router/explain';
import { renderExplanation } from '../router/explain-text';
import { adminBase, AdminUnreachable, callAdmin } from './admin-client';

/** `sidecar explain` exit codes: 0 a route matches, 1 none does, 2 the request or the source could not be read. */
export const EXPLAIN_EXIT_MATCHED = 0;
export const EXPLAIN_EXIT_NO_ROUTE = 1;
export const EXPLAIN_EXIT_ERROR = 2;

export interface ExplainCommandOptions {
  readonly config: string | undefined;
  readonly admin: string | undefined;
  readonly token: string | undefined;
  readonly headers: readonly string[];
  readonly json: boolean;
}

export async function explainCommand(method: string, url: string, options: ExplainCommandOptions): Promise<number> {
  let explanation: Explanation;
  try {
    const headers = options.headers.map(parseHeaderArgument);
    explanation = options.admin !== undefined ? await explainRemote(options.admin, options.token, method, url, headers) : await explainFile(options.config ?? 'sidecar.yaml', method, url, headers);
  } catch (error) {
    if (!(error instanceof ExplainInputError || error instanceof AdminUnreachable)) throw error;
    process.stderr.write(`sidecar explain: ${error.message}\n`);
    return EXPLAIN_EXIT_ERROR;
  }
  process.stdout.write(options.json ? JSON.stringify(explanation, null, 2) + '\n' : renderExplanation(explanation));
  return explanation.matched ? EXPLAIN_EXIT_MATCHED : EXPLAIN_EXIT_NO_ROUTE;
}

async function explainFile(file: string, method: string, url: string, headers: ReadonlyArray<readonly [string, string]>): Promise<Explanation> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new ExplainInputError(`the configuration is invalid:\n${formatConfigErrors(file, loaded.errors)}`);
  return explainRequest(loaded.config, { method, url, headers });
}

async function explainRemote(admin: string, token: string | undefined, method: string, url: string, headers: ReadonlyArray<readonly [string, string]>): Promise<Explanation> {
  const base = adminBase(admin);
  const query = new URLSearchParams({ method, url });
  for (const [name, value] of headers) query.append('header', `${name}:${value}`);
  const answer = await callAdmin(base, `/explain?${query.toString()}`, { token });
  if (answer.status === 400) throw new ExplainInputError((JSON.parse(answer.body) as { message: string }).message);
  if (answer.status !== 200) throw new AdminUnreachable(`${base}/explain answered ${answer.status}: is this a sidecar admin listener of this version?`);
  return JSON.parse(answer.body) as Explanation;
}
