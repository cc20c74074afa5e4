#!/usr/bin/env bash
# Runs the README's quick start the way a newcomer does, so the README cannot rot:
#   1. the `npm start` of the README's first command, from the repository, in the background
#      (`npm ci` has run already: CI's first step; running it again here would replace a
#      node_modules shared by several checkouts);
#   2. waits until the sidecar is ready;
#   3. runs every command of the README block marked `<!-- checked: scripts/check-quickstart.sh -->`
#      (each must exit 0), then checks that GET / answers 200 through the sidecar with an
#      x-request-id, the app having seen x-sidecar-attempt, and 200 over TLS on :8443 with
#      HTTP/1.1 and HTTP/2;
#   4. presses Ctrl-C (SIGINT to the process group) and expects a clean exit and free ports.
# The demo uses fixed ports (3000, 8080, 8443, 9901): if one is taken, this says so and fails.
# Prints "check-quickstart: ok" last on success.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
README="$REPO/README.md"
PORTS=(3000 8080 8443 9901)
READY_URL="http://localhost:9901/ready"
READY_WAIT_SECONDS=180 # `npm start` compiles first; a loaded CI machine is slow at it
STOP_WAIT_SECONDS=30
# The demo drains with delay 0s (examples/sidecar.yaml): Ctrl-C stops it within a few seconds,
# well under the 5 s default drain.delay it would otherwise wait.
STOP_AT_ONCE_SECONDS=5
MARKER='<!-- checked: scripts/check-quickstart.sh -->'

die() { printf 'check-quickstart: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

LOG=$(mktemp "${TMPDIR:-/tmp}/quickstart.XXXXXX")
PID=""
cleanup() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -KILL -- "-$PID" 2>/dev/null || true; fi
  rm -f "$LOG" "$LOG".*
}
trap cleanup EXIT
show_log() { printf -- '--- npm start output ---\n' >&2; cat "$LOG" >&2; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# The README's first code block holds `npm ci && npm start`; take what follows `npm ci &&`.
start_command=$(awk '/^```/ { if (++fence == 2) exit; next } fence == 1' "$README" |
  sed -nE 's/^npm ci && (npm start)([[:space:]]+#.*)?$/\1/p')
[[ $start_command == "npm start" ]] || die "the README's first code block has no 'npm ci && npm start' line"

# The marked block: the first ```sh fence after the marker.
mapfile -t demo_commands < <(awk -v marker="$MARKER" '
  index($0, marker) { armed = 1; next }
  armed && /^```/ { if (inside) exit; inside = 1; next }
  inside' "$README" | sed -E 's/[[:space:]]+#.*$//' | grep -v '^[[:space:]]*$' || true)
((${#demo_commands[@]} > 0)) || die "no command block after '$MARKER' in README.md"

for port in "${PORTS[@]}"; do
  if port_in_use "$port"; then
    die "port $port is already in use on this machine; the quick start binds ${PORTS[*]}. Stop what listens there (ss -ltnp 'sport = :$port') and run again."
  fi
done

say "cd $REPO && $start_command   (in the background)"
cd "$REPO"
# A session of its own, as a terminal gives: Ctrl-C then reaches npm and everything it started.
setsid $start_command >"$LOG" 2>&1 &
PID=$!

waited=0
until curl -fsS -o /dev/null "$READY_URL" 2>/dev/null; do
  alive "$PID" || { show_log; die "npm start exited before the sidecar was ready"; }
  ((waited < READY_WAIT_SECONDS * 2)) || { show_log; die "not ready after ${READY_WAIT_SECONDS}s"; }
  sleep 0.5
  waited=$((waited + 1))
done
say "ready ($READY_URL answered 200)"

for command in "${demo_commands[@]}"; do
  say "$command"
  output=$(bash -o pipefail -c "$command" 2>"$LOG.err") || { cat "$LOG.err" >&2; show_log; die "the README command failed: $command"; }
  [[ -n $output ]] || { show_log; die "the README command printed nothing: $command"; }
  printf '%s\n' "$output" | head -5 | sed 's/^/    /'
done

say "GET http://localhost:8080/ answers through the sidecar"
headers=$(curl -sS -D - -o "$LOG.body" http://localhost:8080/) || die "no answer on :8080"
grep -q '^HTTP/1.1 200' <<<"$headers" || die "expected 200, got: $(head -1 <<<"$headers")"
grep -qi '^x-request-id: ' <<<"$headers" || die "the response has no x-request-id header"
grep -q '"x-sidecar-attempt": "1"' "$LOG.body" || die "the app did not see x-sidecar-attempt: 1"
printf '    200, x-request-id: %s\n' "$(grep -i '^x-request-id: ' <<<"$headers" | cut -d' ' -f2 | tr -d '\r')"

say "GET https://localhost:8443/ answers over TLS, with HTTP/1.1 and with HTTP/2"
tls_headers=$(curl -sS --cacert "$REPO/certs/ca.crt" --http1.1 -D - -o /dev/null https://localhost:8443/) || die "no TLS answer on :8443"
grep -q '^HTTP/1.1 200' <<<"$tls_headers" || die "expected 200 over TLS, got: $(head -1 <<<"$tls_headers")"
h2_headers=$(curl -sS --cacert "$REPO/certs/ca.crt" --http2 -D - -o /dev/null https://localhost:8443/) || die "no HTTP/2 answer on :8443"
grep -q '^HTTP/2 200' <<<"$h2_headers" || die "expected HTTP/2 200, got: $(head -1 <<<"$h2_headers")"
printf '    200 over HTTP/1.1 and HTTP/2\n'

say "Ctrl-C"
stop_started=$SECONDS
kill -INT -- "-$PID"
(sleep "$STOP_WAIT_SECONDS" && kill -KILL -- "-$PID" 2>/dev/null) &
watchdog=$!
status=0
wait "$PID" || status=$?
kill "$watchdog" 2>/dev/null || true
stop_seconds=$((SECONDS - stop_started))
((status != 137)) || { show_log; die "still running ${STOP_WAIT_SECONDS}s after Ctrl-C"; }
# npm reports a child stopped by SIGINT as 130; the demo itself exits 0 after a clean stop.
((status == 0 || status == 130)) || { show_log; die "npm start exited with $status after Ctrl-C"; }
grep -q 'second signal' "$LOG" && { show_log; die "one Ctrl-C was delivered twice (the sidecar exited without draining)"; }
for port in "${PORTS[@]}"; do
  if port_in_use "$port"; then die "port $port still open after the stop"; fi
done
((stop_seconds < STOP_AT_ONCE_SECONDS)) || { show_log; die "Ctrl-C took ${stop_seconds}s to stop the demo (expected at once: drain.delay 0s)"; }
printf '    stopped (exit %s) in %ss, ports %s free again\n' "$status" "$stop_seconds" "${PORTS[*]}"
echo "check-quickstart: ok"
