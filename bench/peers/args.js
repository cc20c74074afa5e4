// @ts-check
'use strict';

/**
 * The peers' shared command line: `--port N --upstream http://127.0.0.1:M`.
 * @param {string[]} argv
 * @returns {{ port: number, host: string, upstream: string }}
 */
function peerArgs(argv) {
  /** @type {Record<string, string>} */
  const flags = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`);
    flags[argv[i].slice(2)] = argv[i + 1];
  }
  return {
    port: Number(flags.port ?? 0),
    host: flags.host ?? '127.0.0.1',
    upstream: flags.upstream ?? 'http://127.0.0.1:18080',
  };
}

module.exports = { peerArgs };
