import { readFileSync } from 'node:fs';
import { text, type AdminHandler } from '../server';
import { DASHBOARD_HTML } from './page';

/** uPlot's files, read once from the installed package (a dependency: it ships with the sidecar). */
function packageFile(specifier: string): () => string {
  let content: string | undefined;
  return () => (content ??= readFileSync(require.resolve(specifier), 'utf8'));
}

const uplotScript = packageFile('uplot/dist/uPlot.iife.min.js');
const uplotStyle = packageFile('uplot/dist/uPlot.min.css');

/** The dashboard's routes: the page and its two assets, readable without the token (they hold no data). */
export const DASHBOARD_ROUTES: ReadonlyArray<readonly [string, AdminHandler]> = [
  ['GET /', () => text(200, DASHBOARD_HTML, 'text/html; charset=utf-8')],
  ['GET /assets/uplot.js', () => text(200, uplotScript(), 'text/javascript; charset=utf-8')],
  ['GET /assets/uplot.css', () => text(200, uplotStyle(), 'text/css; charset=utf-8')],
];
