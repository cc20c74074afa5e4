#!/usr/bin/env bash
# Machine instructions per proxied request, counted by valgrind's callgrind, for one or more
# sidecar configs. Unlike req/s or CPU seconds, an instruction count does not move with the
# load of a shared machine, but the JIT and the garbage collector still make runs differ: the
# main thread's count of one config has varied by up to 10 % between runs, the other threads'
# (V8's compiler and garbage collector) by 4x. Alternate what you compare (A B A B). Work on a
# timer (span exports, periodic checks) runs 50-100x more often per request under valgrind
# than at full speed, so it is overstated. Compare configs (or builds) at the same REQUESTS and
# WARMUP: a longer warm-up grows the heap, and garbage collection then adds to every request.
#
# Usage: npm run build && bash bench/instructions.sh CONFIG.yaml [CONFIG.yaml ...]
#   Each config must listen on 127.0.0.1:18085, keep its admin on 127.0.0.1:18901 and
#   forward to http://127.0.0.1:18080 (bench/peers-sidecar.yaml does), or PROXY_PORT,
#   ADMIN_PORT and UPSTREAM_PORT name the config's ports (two counts can then run side by
#   side). The upstream is bench/peers/upstream.js. Needs valgrind, hey and curl (Debian
#   packages of the same names).
#   REQUESTS (10000) are counted after WARMUP (8000) uncounted ones, 16 connections.
#   SIDECAR_CLI (dist/cli.js) runs another build; NODE_FLAGS are passed to node.
#   KEEP_DUMPS=DIR keeps each config's callgrind dump there (callgrind_annotate reads it: how
#   much is V8's garbage collector, Node's C++, libc, and JIT code "???"). Only user-space
#   instructions are counted: the kernel's side of each system call is not.
#   The word bare-undici in place of a config counts the floor: bench/peers/bare-undici.js on
#   the same ports, so that a table can show each config's count beside it.
# Under valgrind the sidecar runs 50-100 times slower: about two minutes per config.
set -euo pipefail
cd "$(dirname "$0")/.."

# hey sends whole rounds of its 16 connections: the counted requests are a multiple of 16.
REQUESTS=$(( ${REQUESTS:-10000} / 16 * 16 ))
WARMUP=${WARMUP:-8000}
SIDECAR_CLI=${SIDECAR_CLI:-dist/cli.js}
ADMIN=http://127.0.0.1:${ADMIN_PORT:-18901}
TARGET=http://127.0.0.1:${PROXY_PORT:-18085}/

for tool in valgrind callgrind_control hey curl; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is not installed (apt-get install valgrind hey curl)" >&2; exit 1; }
done
[ $# -gt 0 ] || { echo "usage: bash bench/instructions.sh CONFIG.yaml [CONFIG.yaml ...]" >&2; exit 2; }

work=$(mktemp -d)
node bench/peers/upstream.js --port ${UPSTREAM_PORT:-18080} & upstream=$!
sidecar=''
cleanup() {
  [ -n "$sidecar" ] && kill -TERM "$sidecar" 2>/dev/null
  kill "$upstream" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

printf '%-40s %12s %12s %12s\n' config 'instr/req' 'main thread' 'other threads'
for config in "$@"; do
  if [ "$config" = bare-undici ]; then
    # shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" node ${NODE_FLAGS:-} bench/peers/bare-undici.js \
      --port ${PROXY_PORT:-18085} --upstream http://127.0.0.1:${UPSTREAM_PORT:-18080} >/dev/null 2>"$work/valgrind.err" &
    sidecar=$!
    # It has no admin listener: ready when it answers.
    for _ in $(seq 1200); do curl -s -o /dev/null "$TARGET" && break; sleep 0.1; done
  else
    # shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" node ${NODE_FLAGS:-} "$SIDECAR_CLI" run -c "$config" \
      >/dev/null 2>"$work/valgrind.err" &
    sidecar=$!
    node "$SIDECAR_CLI" wait-ready --admin "$ADMIN" --timeout 120s >/dev/null
  fi
  hey -n "$WARMUP" -c 16 "$TARGET" >/dev/null
  callgrind_control --zero "$sidecar" >/dev/null 2>&1
  hey -n "$REQUESTS" -c 16 "$TARGET" >"$work/hey.out"
  callgrind_control --dump "$sidecar" >/dev/null 2>&1
  answered=$(awk '/\[200\]/ {print $2}' "$work/hey.out")
  [ "${answered:-0}" -ge "$REQUESTS" ] || echo "instructions.sh: only ${answered:-0} of $REQUESTS requests got a 200 from $config" >&2
  dump=$(ls -t "$work"/cg."$sidecar".* | head -1)
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  # The main thread runs the event loop; every other thread is V8's (compiler, GC) or libuv's.
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$work/annotated" 2>/dev/null
  main=$(awk '/node::SpinEventLoopInternal/ {gsub(",", "", $1); print $1; exit}' "$work/annotated")
  if [ -n "${KEEP_DUMPS:-}" ]; then mkdir -p "$KEEP_DUMPS" && cp "$dump" "$KEEP_DUMPS/$(basename "$config" .yaml).$sidecar.cg"; fi
  printf '%-40s %12d %12d %12d\n' "$config" $((total / REQUESTS)) $((${main:-0} / REQUESTS)) $(((total - ${main:-0}) / REQUESTS))
  kill -TERM "$sidecar"; wait "$sidecar" 2>/dev/null || true
  sidecar=''
done
