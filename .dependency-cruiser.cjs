/**
 * The layers of src/, lowest first. A module may import from its own layer and from the layers
 * below it, never from a layer above (`npm run lint:layers`, test/delivery/layers.test.ts).
 * Every module in src/ belongs to exactly one layer, so a new folder must be placed here.
 */
const LAYERS = [
  { name: 'core', paths: ['^src/core/'] },
  { name: 'config', paths: ['^src/config/'] },
  { name: 'policy', paths: ['^src/policy/'] },
  { name: 'tls', paths: ['^src/tls/'] },
  { name: 'upstream', paths: ['^src/upstream/'] },
  { name: 'telemetry', paths: ['^src/telemetry/'] },
  { name: 'auth', paths: ['^src/auth/'] },
  { name: 'proxy', paths: ['^src/proxy/'] },
  { name: 'pipeline', paths: ['^src/pipeline/'] },
  { name: 'router', paths: ['^src/router/'] },
  { name: 'listener', paths: ['^src/listener/'] },
  { name: 'admin', paths: ['^src/admin/'] },
  { name: 'lifecycle', paths: ['^src/lifecycle/'] },
  { name: 'runtime', paths: ['^src/runtime/', '^src/sidecar\\.ts$'] },
  { name: 'workers', paths: ['^src/workers/'] },
  { name: 'main', paths: ['^src/main\\.ts$'] },
  { name: 'status', paths: ['^src/status/'] },
  { name: 'operator', paths: ['^src/operator/'] },
  { name: 'cli', paths: ['^src/cli\\.ts$', '^src/demo\\.ts$'] },
];

const pathOf = (layer) => (layer.paths.length === 1 ? layer.paths[0] : `(${layer.paths.join('|')})`);

const upwardRules = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `layer-${layer.name}`,
  comment: `${layer.name} may import only from ${LAYERS.slice(0, index + 1).map((l) => l.name).join(', ')}`,
  severity: 'error',
  from: { path: pathOf(layer) },
  to: { path: LAYERS.slice(index + 1).map(pathOf) },
}));

module.exports = {

  forbidden: [
    ...upwardRules,
    {
      name: 'no-folder-cycle',
      comment: 'folders of src/ do not import each other in a cycle',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-runtime-cycle',
      comment: 'modules do not require each other in a cycle at run time (type-only imports excepted)',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'in-a-layer',
      comment: 'every module of src/ is in one of the layers listed in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/', pathNot: LAYERS.flatMap((l) => l.paths) },
      to: {},
    },
    {
      name: 'to-a-layer',
      comment: 'every module of src/ is in one of the layers listed in .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: LAYERS.flatMap((l) => l.paths) },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    moduleSystems: ['cjs', 'es6'],
  },
};
