/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): every line must
 * be a HELP or TYPE comment or a sample, every sample's family must have been typed, and
 * label values must be properly quoted and escaped. It throws on the first bad line.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
  /** The value of the sample with this name and exactly these labels (undefined if absent). */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of the samples with this name whose labels include `labels`. */
  sum(name: string, labels?: Record<string, string>): number;
}

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(`^(${METRIC_NAME})(\\{(.*)\\})? (\\S+)( -?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/;
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

export function parsePrometheusText(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const type = TYPE.exec(line);
      if (type) {
        if (types.has(type[1])) throw new Error(`${where}: a second TYPE for ${type[1]}`);
        types.set(type[1], type[2]);
      } else if (!HELP.test(line)) {
        throw new Error(`${where}: not a HELP or TYPE line`);
      }
      return;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`${where}: not a sample`);
    const [, name, , labelText = '', rawValue] = sample;
    const family = familyOf(name, types);
    if (family === undefined) throw new Error(`${where}: ${name} has no TYPE before it`);
    const labels: Record<string, string> = {};
    let rest = labelText;
    while (rest.length > 0) {
      const label = LABEL.exec(rest);
      if (!label) throw new Error(`${where}: malformed labels at ${JSON.stringify(rest)}`);
      labels[label[1]] = label[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      rest = rest.slice(label[0].length);
    }
    // Prometheus parses values with Go's ParseFloat: NaN and Inf in any letter case.
    const value = /^[+-]?inf$/i.test(rawValue) ? (rawValue.startsWith('-') ? -Infinity : Infinity) : /^nan$/i.test(rawValue) ? NaN : Number(rawValue);
    if (Number.isNaN(value) && !/^nan$/i.test(rawValue)) throw new Error(`${where}: bad value ${rawValue}`);
    samples.push({ name, labels, value });
  });

  const matches = (sample: Sample, name: string, labels: Record<string, string>): boolean =>
    sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v);
  return {
    types,
    samples,
    value: (name, labels = {}) =>
      samples.find((s) => matches(s, name, labels) && Object.keys(s.labels).length === Object.keys(labels).length)?.value,
    sum: (name, labels = {}) => samples.filter((s) => matches(s, name, labels)).reduce((total, s) => total + s.value, 0),
  };
}

function familyOf(name: string, types: ReadonlyMap<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (name.endsWith(suffix) && types.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return undefined;
}
