// @ts-check
'use strict';

// The app and the OTLP sink that the in-process benchmarks (policy-cost.js, gc-per-request.js)
// run beside their sidecars: the app answers every request with the bench's JSON body, the
// sink drains each export and answers 200.

const http = require('node:http');

const BODY = '{"ok":true,"service":"bench-upstream","payload":"0123456789abcdef0123456789abcdef"}';

/** @param {http.Server} server @returns {Promise<number>} */
function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(/** @type {import('node:net').AddressInfo} */ (server.address()).port)));
}

/** @returns {Promise<{ appPort: number, sinkPort: number, close: () => void }>} */
async function startAppAndSink() {
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
    res.end(BODY);
  });
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  const appPort = await listen(app);
  const sinkPort = await listen(sink);
  return { appPort, sinkPort, close: () => { app.close(); sink.close(); } };
}

module.exports = { listen, startAppAndSink };
