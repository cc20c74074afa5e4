'use strict';
// A stand-in for a remote HTTPS API: https://127.0.0.1:PORT (default 9443) with the
// certificate `sidecar certs --out certs --host payments.example` wrote next to this file.
// Every second request to /flaky fails with 503, to show the sidecar's retry. Each answer
// echoes what the API received: the Host, the traceparent and the attempt number.
//   node payments.js [--port N] [--certs DIR]     prints "payments: listening on PORT"
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');

function flag(name, fallback) {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : process.argv[at + 1];
}

const port = Number(flag('--port', '9443'));
const certs = path.resolve(flag('--certs', path.join(__dirname, 'certs')));
let flakyCalls = 0;

const server = https.createServer(
  { cert: fs.readFileSync(path.join(certs, 'server.crt')), key: fs.readFileSync(path.join(certs, 'server.key')) },
  (req, res) => {
    if (req.url === '/flaky' && ++flakyCalls % 2 === 1) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('try again\n');
      return;
    }
    const body = JSON.stringify({
      path: req.url,
      host: req.headers.host,
      traceparent: req.headers.traceparent,
      attempt: req.headers['x-sidecar-attempt'],
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body + '\n');
  },
);
server.listen(port, '127.0.0.1', () => console.log(`payments: listening on ${server.address().port}`));
process.on('SIGINT', () => server.close(() => process.exit(0)));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
