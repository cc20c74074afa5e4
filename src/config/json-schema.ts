/**
 * The configuration file as JSON Schema, generated from the zod schema, for editors
 * (yaml-language-server: `# yaml-language-server: $schema=./sidecar.schema.json`) and for
 * `sidecar schema`. Draft-07 because it is the draft editors support best.
 *
 * Cross-field rules (a route's cluster exists, backoff base <= max, ...) cannot be said in
 * JSON Schema; `sidecar validate` checks them.
 */
import { z } from 'zod';
import { configSchema } from './schema';

export const CONFIG_JSON_SCHEMA_ID = 'urn:sidecar:configuration';
export const CONFIG_JSON_SCHEMA_TITLE = 'sidecar configuration';

export type JsonSchema = { readonly [key: string]: unknown };

let cached: JsonSchema | undefined;

/** The JSON Schema (draft-07) of the configuration file. Each call returns a fresh copy. */
export function configJsonSchema(): JsonSchema {
  if (cached === undefined) {
    const generated = z.toJSONSchema(configSchema, {
      target: 'draft-07',
      // The document as the user writes it; the schema has no transforms anyway.
      io: 'input',
    }) as Record<string, unknown>;
    const { $schema, ...rest } = generated;
    cached = { $schema, $id: CONFIG_JSON_SCHEMA_ID, title: CONFIG_JSON_SCHEMA_TITLE, ...rest };
  }
  return structuredClone(cached);
}
