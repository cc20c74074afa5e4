/**
 * The package installed the way the README's Guide says (`npm pack`, then `npm install -g` of
 * the tarball), into a temporary prefix. Its dependencies are the repository's own
 * node_modules (linked), so the install works offline; SIDECAR_TEST_REGISTRY_INSTALL=1
 * installs the tarball itself instead, dependencies from the registry (or npm's cache),
 * exactly as a user does. dist/ must be built (npm test builds it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './examples';

export const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };
export const TARBALL = `${PACKAGE.name}-${PACKAGE.version}.tgz`;

export interface PackedInstall {
  /** The tarball npm pack wrote. */
  readonly tarball: string;
  /** The prefix's bin folder, holding the `sidecar` command. */
  readonly bin: string;
}

/** Packs the repository into `tmp` and installs the tarball into `tmp`/prefix. */
export function installPackedPackage(tmp: string): PackedInstall {
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is not built: npm run build');
  // npm pack's prepack builds; dist/ is built already.
  execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' });
  const tarball = path.join(tmp, TARBALL);
  const prefix = path.join(tmp, 'prefix');
  let source = tarball;
  if (process.env.SIDECAR_TEST_REGISTRY_INSTALL !== '1') {
    const unpacked = path.join(tmp, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['xzf', tarball, '-C', unpacked]);
    source = path.join(unpacked, 'package');
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(source, 'node_modules'));
  }
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', source === tarball ? '--prefer-offline' : '--offline', source], { cwd: tmp, encoding: 'utf8' });
  return { tarball, bin: path.join(prefix, 'bin') };
}
