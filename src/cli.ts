#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { formatConfigErrors, loadConfigFile, summarizeConfig } from './config/load';
import { configJsonSchema } from './config/json-schema';
import { DEFAULT_ADMIN_ADDRESS } from './config/defaults';
import { formatDurationMs, parseDurationMs } from './config/units';
import { describeTracingSettings, resolveTracingSettings } from './telemetry/tracing-settings';
import { DEFAULT_WAIT_READY_TIMEOUT_MS, waitReady } from './lifecycle/wait-ready';

// `run` and `certs` load the proxy, TLS and telemetry modules only when they are used, so
// that `validate`, `schema` and the probes start in a fraction of the time.
function loadMain(): typeof import('./main') {
  return require('./main') as typeof import('./main');
}
function loadCertificates(): typeof import('./tls/certificates') {
  return require('./tls/certificates') as typeof import('./tls/certificates');
}

const DEFAULT_CONFIG_PATH = process.env.SIDECAR_CONFIG ?? 'sidecar.yaml';
/** The admin listener for `status` and `wait-ready`; SIDECAR_ADMIN is the old name of wait-ready's variable, still read. */
const DEFAULT_ADMIN_URL = process.env.SIDECAR_ADMIN_URL ?? process.env.SIDECAR_ADMIN ?? `http://${DEFAULT_ADMIN_ADDRESS}`;
/** `sidecar status` exit codes: 0 ready, 1 the admin listener could not be read, 2 reachable but not ready. */
const STATUS_EXIT_UNREACHABLE = 1;
const STATUS_EXIT_NOT_READY = 2;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

function duration(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration such as 500ms, 30s or 2m');
  return ms;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildCli(): Command {
  const program = new Command('sidecar')
    .description('A reverse-proxy sidecar: TLS, declarative routes, retries, circuit breaking, tracing.')
    .version(packageVersion())
    .showHelpAfterError();

  program
    .command('run')
    .description('run the sidecar with a configuration file (reloaded when it changes)')
    .option('-c, --config <file>', 'the YAML configuration file (env SIDECAR_CONFIG)', DEFAULT_CONFIG_PATH)
    .action(async (options: { config: string }) => {
      if (!existsSync(options.config)) {
        throw new Error(`no configuration file at ${path.resolve(options.config)}: pass one with -c FILE (or set SIDECAR_CONFIG=FILE)`);
      }
      // Loaded on use: `run` starts tracing before the proxy modules are loaded (see main.ts).
      await loadMain().run(options.config);
    });

  program
    .command('status')
    .description('print a report of a running sidecar, read from its admin listener')
    .option('--admin <url>', 'the admin listener (env SIDECAR_ADMIN_URL)', DEFAULT_ADMIN_URL)
    .option('--token <token>', 'the admin bearer token, when admin.token is set (env SIDECAR_ADMIN_TOKEN)')
    .option('--json', 'print the report as JSON, for scripts')
    .action(async (options: { admin: string; token?: string; json?: boolean }) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { collectStatus, StatusError } = require('./status/collect') as typeof import('./status/collect');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { renderStatus } = require('./status/render') as typeof import('./status/render');
      const admin = /^https?:\/\//.test(options.admin) ? options.admin : `http://${options.admin}`;
      try {
        const report = await collectStatus(admin, { token: options.token ?? process.env.SIDECAR_ADMIN_TOKEN });
        process.stdout.write(options.json ? JSON.stringify(report, null, 2) + '\n' : renderStatus(report));
        if (!report.ready) process.exitCode = STATUS_EXIT_NOT_READY;
      } catch (error) {
        if (!(error instanceof StatusError)) throw error;
        process.stderr.write(`sidecar status: ${error.message}\n`);
        process.exitCode = STATUS_EXIT_UNREACHABLE;
      }
    });

  program
    .command('explain')
    .description('which listener and route a request takes, why each earlier route does not match, the policies that apply and the upstream URL; exits 0 when a route matches, 1 when none does, 2 when it cannot tell')
    .argument('<method>', 'the request method, e.g. GET')
    .argument('<url>', 'the request path (/x?y) or an absolute URL (http://host:port/x)')
    .option('-c, --config <file>', 'explain against this configuration file (env SIDECAR_CONFIG)')
    .option('--admin <url>', 'ask a running sidecar instead (adds breaker state and retry budget now)')
    .option('--token <token>', 'the admin bearer token, when admin.token is set (env SIDECAR_ADMIN_TOKEN)')
    .option('-H, --header <header>', "a request header, 'name: value' (repeatable)", collect, [])
    .option('--json', 'print the explanation as JSON')
    .action(async (method: string, url: string, options: { config?: string; admin?: string; token?: string; header: string[]; json?: boolean }) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { explainCommand } = require('./operator/explain-command') as typeof import('./operator/explain-command');
      process.exitCode = await explainCommand(method, url, {
        config: options.config ?? (options.admin === undefined ? DEFAULT_CONFIG_PATH : undefined),
        admin: options.admin,
        token: options.token ?? process.env.SIDECAR_ADMIN_TOKEN,
        headers: options.header,
        json: options.json === true,
      });
    });

  program
    .command('diff')
    .description('preview a reload: what a new configuration file changes (listeners, routes, clusters, field by field) and how many recent requests it would route differently; changes nothing')
    .requiredOption('-c, --config <file>', 'the new YAML configuration file')
    .option('--admin <url>', 'the running sidecar (env SIDECAR_ADMIN_URL)', DEFAULT_ADMIN_URL)
    .option('--token <token>', 'the admin bearer token, when admin.token is set (env SIDECAR_ADMIN_TOKEN)')
    .option('--json', 'print the preview as JSON')
    .action(async (options: { config: string; admin: string; token?: string; json?: boolean }) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { diffCommand } = require('./operator/diff-command') as typeof import('./operator/diff-command');
      process.exitCode = await diffCommand({ config: options.config, admin: options.admin, token: options.token ?? process.env.SIDECAR_ADMIN_TOKEN, json: options.json === true });
    });

  program
    .command('validate')
    .description('check a configuration file and every file it names (certificates, keys, CAs, the access log folder); prints every error with its path and line, exits 1 if any')
    .argument('<file>', 'the YAML configuration file')
    .option('--syntax-only', 'check the file alone, not the certificates, CAs and access log it names (for a file checked away from where it runs); auth files are read with the file')
    .action(async (file: string, options: { syntaxOnly?: boolean }) => {
      const result = await loadConfigFile(file);
      if (!result.ok) {
        process.stderr.write(formatConfigErrors(file, result.errors) + '\n');
        process.exitCode = 1;
        return;
      }
      if (options.syntaxOnly !== true) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { checkConfigFiles } = require('./lifecycle/config-files') as typeof import('./lifecycle/config-files');
        const fileErrors = checkConfigFiles(result.config);
        if (fileErrors.length > 0) {
          process.stderr.write(formatConfigErrors(file, fileErrors) + '\n');
          process.exitCode = 1;
          return;
        }
      }
      // The tracing `run` would start: the file's section merged with the OTEL_* variables.
      const tracing = resolveTracingSettings(result.config, process.env);
      process.stdout.write(`${file}: ${summarizeConfig(result.config, tracing.exporter)}\n${describeTracingSettings(tracing)}\n`);
      for (const warning of tracing.warnings) process.stderr.write(`${file}: warning: tracing: ${warning}\n`);
    });

  program
    .command('wait-ready')
    .description("wait until the sidecar's /ready answers 200 (a pod's postStart hook, a compose healthcheck); exits 1 on timeout")
    .option('--admin <url>', 'base URL of the admin listener (env SIDECAR_ADMIN_URL)', DEFAULT_ADMIN_URL)
    .addOption(
      new Option('--timeout <duration>', 'how long to wait, e.g. 10s or 2m')
        .argParser(duration)
        .default(DEFAULT_WAIT_READY_TIMEOUT_MS, formatDurationMs(DEFAULT_WAIT_READY_TIMEOUT_MS)),
    )
    .action(async (options: { admin: string; timeout: number }) => {
      let base: URL;
      try {
        base = new URL(options.admin);
      } catch {
        throw new InvalidArgumentError(`--admin ${options.admin} is not a URL (e.g. http://127.0.0.1:9901)`);
      }
      const result = await waitReady(base.href, options.timeout);
      if (result.ready) {
        process.stdout.write(`ready: ${new URL('/ready', base).href} (after ${result.waitedMs}ms)\n`);
        return;
      }
      process.stderr.write(`sidecar wait-ready: ${new URL('/ready', base).href} not ready after ${formatDurationMs(options.timeout)} (last answer: ${result.lastAnswer})\n`);
      process.exitCode = 1;
    });

  program
    .command('schema')
    .description('print the JSON Schema of the configuration file (for editors: yaml-language-server)')
    .action(() => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    });

  program
    .command('certs')
    .description('create a local CA and a server certificate signed by it (and a client certificate for mTLS)')
    .requiredOption('--out <dir>', 'folder to write ca.crt, ca.key, server.crt, server.key (and client.*)')
    .option('--host <name>', 'a DNS name for the server certificate (repeatable)', collect, [])
    .option('--ip <address>', 'an IP address for the server certificate (repeatable)', collect, [])
    .option('--days <n>', 'validity of the server and client certificates in days (at most 397)', positiveInt, 397)
    .option('--client <name>', 'also write client.crt/client.key with this common name')
    .option('--key-type <type>', 'rsa (2048 bits) or ec (P-256)', 'rsa')
    .action(async (options: { out: string; host: string[]; ip: string[]; days: number; client?: string; keyType: string }) => {
      if (options.host.length === 0 && options.ip.length === 0) throw new InvalidArgumentError('give at least one --host or --ip');
      if (options.keyType !== 'rsa' && options.keyType !== 'ec') throw new InvalidArgumentError('--key-type is rsa or ec');
      const files = await loadCertificates().generateCertificates({
        outDir: options.out,
        hosts: options.host,
        ips: options.ip,
        days: options.days,
        client: options.client,
        keyType: options.keyType,
      });
      process.stdout.write(`wrote ${Object.values(files).filter(Boolean).join(', ')}\n`);
    });

  return program;
}

if (require.main === module) {
  buildCli()
    .parseAsync(process.argv)
    .catch((error: unknown) => {
      process.stderr.write(`sidecar: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    });
}
