/**
 * The files generated from the configuration schema are committed; they must be what the
 * schema renders now, or editors and readers see a contract the parser no longer has.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { configJsonSchema } from '../../src/config/json-schema';
import { DOCS_COMMAND, anchorOf, renderConfigReference, renderJsonSchemaFile } from '../../src/config/reference';

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

t.test('docs/CONFIGURATION.md is the reference the schema renders now', async (t) => {
  t.ok(read('docs/CONFIGURATION.md') === renderConfigReference(), `docs/CONFIGURATION.md is up to date (if not: ${DOCS_COMMAND})`);
});

t.test('sidecar.schema.json is the JSON Schema `sidecar schema` prints now', async (t) => {
  const committed = read('sidecar.schema.json');
  t.same(JSON.parse(committed), configJsonSchema(), `same schema (if not: ${DOCS_COMMAND})`);
  t.ok(committed === renderJsonSchemaFile(), `same text (if not: ${DOCS_COMMAND})`);
});

t.test('every field of the schema has a row, and every link of the reference has a target', async (t) => {
  const doc = renderConfigReference();
  const ids = new Set([...doc.matchAll(/<a id="([^"]+)"><\/a>/g)].map((m) => m[1]));
  const links = [...doc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
  t.ok(links.length > 20, `${links.length} links`);
  for (const link of new Set(links)) t.ok(ids.has(link), `#${link} has a target`);

  const schema = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown>; items?: { properties?: Record<string, unknown> } }> };
  const listenerFields = Object.keys(schema.properties.listeners.items?.properties ?? {});
  t.ok(listenerFields.length > 5);
  const listenerSection = doc.slice(doc.indexOf(`<a id="${anchorOf('listeners[]')}">`));
  for (const field of listenerFields) t.match(listenerSection, `| \`${field}\` |`, `listeners[].${field} has a row`);
});

t.test('the reference renders types a YAML author recognises', async (t) => {
  const doc = renderConfigReference();
  t.match(doc, '| `timeout` | [duration](#units) |', 'durations');
  t.match(doc, '| `maxRequestBodyBytes` | [size](#units) |', 'sizes');
  t.match(doc, '| `exporter` | `otlp-http`, `otlp-grpc`, `console`, `none` |', 'enums');
  t.match(doc, '| `workers` | integer 1–1024 or `auto` |', 'unions');
  t.match(doc, '| `routes` | list of [objects](#listeners-routes), **required** |', 'required lists of objects');
  t.notMatch(doc, /\| value \|/, 'no field falls back to the generic "value"');
});
