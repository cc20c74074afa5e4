import t from 'tap';
import { CONFIG_JSON_SCHEMA_ID, CONFIG_JSON_SCHEMA_TITLE, configJsonSchema } from '../../src/config/json-schema';

type Json = { [key: string]: unknown };
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every schema node in the tree, with its JSON pointer. */
function* walk(node: unknown, pointer = '#'): Generator<[string, Json]> {
  if (!isObject(node)) return;
  yield [pointer, node];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' && isObject(value)) {
      for (const [name, child] of Object.entries(value)) yield* walk(child, `${pointer}/properties/${name}`);
    } else if ((key === 'items' || key === 'additionalProperties' || key === 'propertyNames') && isObject(value)) {
      yield* walk(value, `${pointer}/${key}`);
    } else if ((key === 'anyOf' || key === 'oneOf') && Array.isArray(value)) {
      for (const [i, child] of value.entries()) yield* walk(child, `${pointer}/${key}/${i}`);
    }
  }
}

t.test('is a draft-07 object schema named sidecar configuration', async (t) => {
  const schema = configJsonSchema();
  t.ok(isObject(schema));
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  t.equal(schema.$id, CONFIG_JSON_SCHEMA_ID);
  t.equal(schema.title, CONFIG_JSON_SCHEMA_TITLE);
  t.equal(schema.title, 'sidecar configuration');
  t.equal(schema.type, 'object');
  t.same(schema.required, ['listeners']);
  t.same(Object.keys(schema.properties as Json).sort(), ['accessLog', 'admin', 'clusters', 'drain', 'listeners', 'tracing', 'workers']);
  t.doesNotThrow(() => JSON.stringify(schema));
});

t.test('unknown keys are rejected at the top level and in every object', async (t) => {
  const schema = configJsonSchema();
  t.equal(schema.additionalProperties, false, 'top level');
  let objects = 0;
  for (const [pointer, node] of walk(schema)) {
    if (node.type === 'object' && isObject(node.properties)) {
      objects++;
      t.equal(node.additionalProperties, false, pointer);
    }
  }
  t.ok(objects > 15, `${objects} object schemas checked`);
});

t.test('every field is described, with its default or as required', async (t) => {
  const schema = configJsonSchema();
  t.type(schema.description, 'string');
  let fields = 0;
  for (const [pointer, node] of walk(schema)) {
    if (!/\/properties\/[^/]+$/.test(pointer)) continue;
    fields++;
    t.type(node.description, 'string', `${pointer} has a description`);
    t.match(String(node.description), /default|required|omit|without this section|one of/i, `${pointer} says its default`);
  }
  t.ok(fields > 60, `${fields} fields checked`);
});

t.test('exclusive choices are oneOf', async (t) => {
  const schema = configJsonSchema() as Json;
  const listener = ((schema.properties as Json).listeners as Json).items as Json;
  const route = ((listener.properties as Json).routes as Json).items as Json;
  t.same(route.oneOf, [{ required: ['cluster'] }, { required: ['directResponse'] }, { required: ['redirect'] }, { required: ['weightedClusters'] }]);
  const match = (route.properties as Json).match as Json;
  t.same(match.oneOf, [{ required: ['path'] }, { required: ['prefix'] }, { required: ['regex'] }]);
  const retryOn = (((route.properties as Json).retry as Json).properties as Json).on as Json;
  t.same((retryOn.items as Json).enum, ['5xx', 'gateway-error', 'connect-failure', 'reset', 'retriable-4xx', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
});

t.test('patterns are valid unicode regexes; the duration pattern matches the duration grammar', async (t) => {
  const schema = configJsonSchema();
  for (const [pointer, node] of walk(schema)) {
    if (typeof node.pattern === 'string') t.doesNotThrow(() => new RegExp(node.pattern as string, 'u'), pointer);
  }
  const listener = ((schema.properties as Json).listeners as Json).items as Json;
  const route = ((listener.properties as Json).routes as Json).items as Json;
  const timeout = (route.properties as Json).timeout as Json;
  const duration = new RegExp(timeout.pattern as string, 'u');
  for (const good of ['250ms', '5s', '1m', '1h', '1.5s']) t.match(good, duration);
  for (const bad of ['5 parsecs', '5', 's', '-1s']) t.notMatch(bad, duration);
});

t.test('returns a fresh copy each time', async (t) => {
  const a = configJsonSchema() as Json;
  a.title = 'changed';
  t.equal(configJsonSchema().title, 'sidecar configuration');
});
