/**
 * Every YAML file in examples/ is something a tool reads: a route file (validated by the
 * real CLI, carrying the editor schema modeline), a Kubernetes manifest or a compose file.
 */
import t from 'tap';
import { SCHEMA_FILE, classify, exampleYamlFiles, modelineSchema, sidecarCli } from '../helpers/examples';

const files = exampleYamlFiles();

t.test('every YAML file in examples/ parses and is a route file, Kubernetes manifests or a compose file', async (t) => {
  t.ok(files.length >= 9, `${files.length} YAML files`);
  for (const file of files) t.ok(classify(file), `${file} is a route file, Kubernetes manifests or a compose file`);
});

t.test('every route file starts with the schema modeline and passes `sidecar validate --syntax-only`', async (t) => {
  const routeFiles = files.filter((f) => classify(f) === 'route-file');
  t.ok(routeFiles.length >= 4, `${routeFiles.length} route files: ${routeFiles.join(', ')}`);
  for (const file of routeFiles) {
    t.equal(modelineSchema(file), SCHEMA_FILE, `${file}: first line is the modeline, pointing at sidecar.schema.json`);
    // --syntax-only: the certificates they name exist where they are deployed, not here.
    const result = sidecarCli('validate', '--syntax-only', file);
    t.equal(result.status, 0, `${file}: sidecar validate --syntax-only exits 0 ${result.stderr}`);
    t.match(result.stdout, /: ok: /, `${file}: summary printed`);
  }
});

t.test('a modeline is only on route files (it would make editors flag other files)', async (t) => {
  for (const file of files.filter((f) => classify(f) !== 'route-file')) {
    t.equal(modelineSchema(file), undefined, `${file} has no sidecar schema modeline`);
  }
});
