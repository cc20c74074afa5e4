/**
 * The configuration reference (docs/CONFIGURATION.md), rendered from the JSON Schema that
 * json-schema.ts generates from the zod schema. The schema's descriptions are the only
 * source of the text: a field documented here is a field the parser accepts, with the
 * default the compiler applies (both read config/defaults.ts).
 *
 * Output is deterministic (schema order, no dates) so that a test can compare the
 * committed file with a fresh rendering.
 */
import { configJsonSchema, type JsonSchema } from './json-schema';
import { DURATION_PATTERN_TEXT, SIZE_PATTERN_TEXT } from './schema';

/** The command that rewrites the generated files; named in their header and in test failures. */
export const DOCS_COMMAND = 'npm run docs';

interface Section {
  /** `listeners[].routes[].retry`, or '' for the document itself. */
  readonly path: string;
  readonly schema: JsonSchema;
}

const isSchema = (value: unknown): value is JsonSchema => typeof value === 'object' && value !== null && !Array.isArray(value);

function properties(schema: JsonSchema): [string, JsonSchema][] {
  const props = schema.properties;
  if (!isSchema(props)) return [];
  return Object.entries(props).filter((entry): entry is [string, JsonSchema] => isSchema(entry[1]));
}

function required(schema: JsonSchema): ReadonlySet<string> {
  return new Set(Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === 'string') : []);
}

const isObjectWithFields = (schema: JsonSchema): boolean => schema.type === 'object' && isSchema(schema.properties);

/** The object a field leads to (itself, or the items of a list), if it has fields of its own. */
function nestedObject(schema: JsonSchema): { schema: JsonSchema; suffix: string } | undefined {
  if (isObjectWithFields(schema)) return { schema, suffix: '' };
  if (schema.type === 'array' && isSchema(schema.items) && isObjectWithFields(schema.items)) return { schema: schema.items, suffix: '[]' };
  // `false` or an object (admin.recorder): the object gets its section.
  const objectOption = Array.isArray(schema.anyOf) ? schema.anyOf.filter(isSchema).find(isObjectWithFields) : undefined;
  if (objectOption !== undefined) return { schema: objectOption, suffix: '' };
  return undefined;
}

/** Every object of the document, depth first in schema order: one section each. */
function collectSections(root: JsonSchema): Section[] {
  const sections: Section[] = [];
  const visit = (path: string, schema: JsonSchema): void => {
    sections.push({ path, schema });
    for (const [key, child] of properties(schema)) {
      const nested = nestedObject(child);
      if (nested) visit(`${path === '' ? '' : `${path}.`}${key}${nested.suffix}`, nested.schema);
    }
  };
  visit('', root);
  return sections;
}

/** A stable HTML id: GitHub's own heading anchors drop the brackets and dots that matter here. */
export function anchorOf(path: string): string {
  return path === '' ? 'top-level' : path.replace(/\[\]/g, '').replace(/\./g, '-').toLowerCase();
}

function sectionTitle(path: string): string {
  return path === '' ? 'Top level' : `\`${path}\``;
}

function range(schema: JsonSchema): string {
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' && schema.maximum < Number.MAX_SAFE_INTEGER ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) return ` ${min}–${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return '';
}

/** What a value looks like, in words a YAML author uses. */
function typeOf(schema: JsonSchema, childPath: string): string {
  if (schema.pattern === DURATION_PATTERN_TEXT) return '[duration](#units)';
  if (Array.isArray(schema.anyOf)) {
    const options = schema.anyOf.filter(isSchema);
    if (options.some((o) => o.pattern === SIZE_PATTERN_TEXT)) return '[size](#units)';
    return options.map((o) => typeOf(o, childPath)).join(' or ');
  }
  if (schema.const !== undefined) return `\`${String(schema.const)}\``;
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => `\`${String(v)}\``).join(', ');
  switch (schema.type) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'integer':
      return `integer${range(schema)}`;
    case 'number':
      return `number${range(schema)}`;
    case 'array': {
      const items = isSchema(schema.items) ? schema.items : {};
      if (isObjectWithFields(items)) return `list of [objects](#${anchorOf(`${childPath}[]`)})`;
      const itemType = typeOf(items, childPath);
      return `list of ${Array.isArray(items.enum) ? `(${itemType})` : itemType}`;
    }
    case 'object': {
      if (isObjectWithFields(schema)) return `[object](#${anchorOf(childPath)})`;
      const values = isSchema(schema.additionalProperties) ? typeOf(schema.additionalProperties, childPath) : 'value';
      return `map of name → ${values}`;
    }
    default:
      return 'value';
  }
}

/** Table cells hold one line; a pipe would end the cell. */
function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

function describe(schema: JsonSchema): string {
  return typeof schema.description === 'string' ? schema.description : '';
}

function renderSection(section: Section): string {
  const lines: string[] = [];
  lines.push(`<a id="${anchorOf(section.path)}"></a>`, '', `## ${sectionTitle(section.path)}`, '');
  const text = describe(section.schema);
  if (text !== '') lines.push(text, '');
  const fields = properties(section.schema);
  const mandatory = required(section.schema);
  lines.push('| field | type | description |', '| --- | --- | --- |');
  for (const [key, child] of fields) {
    const childPath = `${section.path === '' ? '' : `${section.path}.`}${key}`;
    const isRequired = mandatory.has(key);
    const type = typeOf(child, childPath) + (isRequired ? ', **required**' : '');
    // The type column says "required"; the description's own "Required." would repeat it.
    const text = isRequired ? describe(child).replace(/\s*Required\.$/, '') : describe(child);
    lines.push(`| \`${key}\` | ${cell(type)} | ${cell(text)} |`);
  }
  lines.push('');
  return lines.join('\n');
}

const INTRO = `# Configuration reference

<!-- Generated from src/config/schema.ts by \`${DOCS_COMMAND}\`; a test fails when this file is out of date. Edit the schema's descriptions, not this file. -->

The sidecar reads one YAML file (\`sidecar run -c FILE\`). \`sidecar validate FILE\` checks it
and prints every error with its path and line; \`sidecar schema\` prints the JSON Schema this
page is generated from (also committed as \`sidecar.schema.json\` at the repository root, for
editors: start the file with \`# yaml-language-server: $schema=<path to sidecar.schema.json>\`).

Unknown keys are errors, so a misspelt field never silently falls back to a default. Rules
that span several objects are checked by \`sidecar validate\` too: names are unique, every
route's \`cluster\` is defined, a \`perTryTimeout\` fits in the route's \`timeout\`.

<a id="units"></a>

**Units.** Durations are strings with a unit: \`250ms\`, \`5s\`, \`1.5m\`, \`1h\`. Sizes are a
number of bytes or a string with a unit: \`512B\`, \`64KiB\`, \`10MiB\`, \`1GiB\` (\`KB\`, \`MB\`, \`GB\`
are powers of 1000). Relative file paths resolve against the folder of the YAML file.
`;

/** The whole reference page (Markdown). */
export function renderConfigReference(schema: JsonSchema = configJsonSchema()): string {
  const sections = collectSections(schema);
  const contents = sections.map((s) => `- [${s.path === '' ? 'Top level' : s.path}](#${anchorOf(s.path)})`);
  return [INTRO, '## Contents', '', ...contents, '', ...sections.map(renderSection)].join('\n').replace(/\n+$/, '\n');
}

/** The JSON Schema file committed at the repository root (`sidecar.schema.json`). */
export function renderJsonSchemaFile(schema: JsonSchema = configJsonSchema()): string {
  return JSON.stringify(schema, null, 2) + '\n';
}
