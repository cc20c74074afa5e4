#!/usr/bin/env bash
# Builds the image of ./Dockerfile without a Docker engine, then runs it like a container.
#
#   scripts/dockerfile-steps.sh          build and check (a few minutes: two npm installs; CI runs it)
#   scripts/dockerfile-steps.sh --keep   ... and keep the temporary folder (printed at the end)
#   scripts/dockerfile-steps.sh --plan   print how each instruction is handled; run nothing
#
# It reads the Dockerfile itself, so the steps it runs are the image's steps:
#   - the build context is a copy of the repository filtered by .dockerignore;
#   - each stage is a folder standing in for the image's file system; FROM starts an empty
#     one (the host's node and npm stand in for the base image's);
#   - WORKDIR, COPY (also --from a stage) and ENV act on that folder, absolute image paths
#     mapped into it; RUN runs with `sh -c` in the WORKDIR, so RUN steps must use relative
#     paths (checked). BuildKit cache mounts only speed builds up and are ignored;
#   - USER, EXPOSE, HEALTHCHECK, STOPSIGNAL, ENTRYPOINT and CMD are recorded from the last stage.
# Then, on the last stage's folder:
#   - no dev dependency was installed, and every file is readable by a user that does not
#     own it (USER is not root; the files belong to root in the image);
#   - `ENTRYPOINT validate FILE` accepts the configuration CMD's `-c` points at, here
#     examples/sidecar.yaml with free ports, written where a volume would mount it;
#   - ENTRYPOINT + CMD start the sidecar in front of the demo app; /ready answers, the
#     HEALTHCHECK command passes, a request answers through the sidecar with x-request-id;
#   - STOPSIGNAL (SIGTERM) stops it with exit code 0.
# Prints "dockerfile-steps: ok" last on success; any failure exits 1 with the reason.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE="$REPO/Dockerfile"
DOCKERIGNORE="$REPO/.dockerignore"
EXAMPLE_CONFIG="$REPO/examples/sidecar.yaml"
DEMO_APP="$REPO/examples/app/server.js"
READY_WAIT_SECONDS=60
STOP_WAIT_SECONDS=30

MODE=build
KEEP=0
for arg in "$@"; do
  case $arg in
    --plan) MODE=plan ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'dockerfile-steps: unknown argument %s (try --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

die() { printf 'dockerfile-steps: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

WORK=""
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP == 1 ]]; then printf 'kept %s\n' "$WORK"; else rm -rf "$WORK"; fi
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Reading the Dockerfile: one entry per instruction, continuation lines joined, comments
# (and the `# syntax=` parser directive) dropped, as Docker does.
# ---------------------------------------------------------------------------------------------
INSTRUCTIONS=()
read_dockerfile() {
  local line joined=""
  [[ -f $DOCKERFILE ]] || die "no Dockerfile at $DOCKERFILE"
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*# ]] && continue
    [[ -z $joined && $line =~ ^[[:space:]]*$ ]] && continue
    [[ -n $joined ]] && line=${line#"${line%%[![:space:]]*}"}
    if [[ $line =~ \\[[:space:]]*$ ]]; then
      joined+="${line%\\*} "
    else
      joined+="$line"
      INSTRUCTIONS+=("$(sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//' <<<"$joined")")
      joined=""
    fi
  done <"$DOCKERFILE"
  [[ -z $joined ]] || die "the Dockerfile ends inside a continuation line"
}

# A JSON array (exec form) → one argument per line. Dies on anything else.
json_args() {
  node -e '
    const value = JSON.parse(process.argv[1]);
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string" && !v.includes("\n"))) process.exit(3);
    process.stdout.write(value.join("\n"));
  ' "$1" || die "expected the exec form [\"...\", ...], got: $1"
}

# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------
STAGE_INDEX=-1
STAGE_NAME=""
STAGE_DIR=""
declare -A STAGE_DIRS=()
declare -A STAGE_ENV=()
BASE_IMAGE=""
# What each FROM starts afresh (a stage inherits none of it from the one before).
reset_stage_settings() {
  WORKDIR_IMG="/"
  STAGE_ENV=()
  STAGE_ENV_KEYS=()
  FINAL_USER=""
  FINAL_EXPOSE=""
  FINAL_STOPSIGNAL="SIGTERM"
  HEALTHCHECK_JSON=""
  ENTRYPOINT_JSON=""
  CMD_JSON=""
}
reset_stage_settings

# An image path (absolute, or relative to WORKDIR) → the path in the stage folder.
to_host() {
  local p=$1
  [[ $p == /* ]] || p="${WORKDIR_IMG%/}/$p"
  printf '%s%s' "$STAGE_DIR" "$p"
}

# ENV values: absolute paths (also inside PATH-like lists) are image paths; $NAME and ${NAME}
# expand from the stage's earlier ENV, then from the host environment (as the base image's).
env_value() {
  local raw=$1 out="" segment name value expanded
  local var_re='\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?'
  local -a segments
  IFS=':' read -r -a segments <<<"$raw"
  for segment in "${segments[@]}"; do
    if [[ $segment =~ ^/[^/] ]]; then segment="$STAGE_DIR$segment"; fi
    expanded=""
    while [[ $segment =~ $var_re ]]; do
      name=${BASH_REMATCH[1]}
      if [[ -v STAGE_ENV[$name] ]]; then value=${STAGE_ENV[$name]}; else value=${!name-}; fi
      expanded+="${segment%%"${BASH_REMATCH[0]}"*}$value"
      segment=${segment#*"${BASH_REMATCH[0]}"}
    done
    out+="${out:+:}$expanded$segment"
  done
  [[ $raw == *: ]] && out+=":"
  printf '%s' "$out"
}

# The environment a RUN step or the container sees: the host's, then the stage's ENV.
stage_env_args() {
  local key
  for key in "${STAGE_ENV_KEYS[@]}"; do printf '%s=%s\0' "$key" "${STAGE_ENV[$key]}"; done
}

do_from() {
  local args=$1 image name
  args=$(sed -E 's/--platform=[^[:space:]]+[[:space:]]*//' <<<"$args")
  image=${args%%[[:space:]]*}
  name=""
  if [[ $args =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+)$ ]]; then name=${BASH_REMATCH[1]}; fi
  STAGE_INDEX=$((STAGE_INDEX + 1))
  STAGE_NAME=${name:-$STAGE_INDEX}
  BASE_IMAGE=$image
  reset_stage_settings
  if [[ $MODE == build ]]; then
    STAGE_DIR="$WORK/stages/$STAGE_INDEX-$STAGE_NAME"
    mkdir -p "$STAGE_DIR"
    STAGE_DIRS[$STAGE_NAME]=$STAGE_DIR
    STAGE_DIRS[$STAGE_INDEX]=$STAGE_DIR
  fi
}

do_workdir() {
  local p=$1
  [[ $p == /* ]] || p="${WORKDIR_IMG%/}/$p"
  WORKDIR_IMG=$p
  [[ $MODE == build ]] && mkdir -p "$(to_host "$p")"
  return 0
}

do_env() {
  local pair key
  local -a pairs
  [[ $1 == *[\"\']* ]] && die "ENV: quoted values are not supported here: $1"
  read -r -a pairs <<<"$1"
  for pair in "${pairs[@]}"; do
    [[ $pair == [A-Za-z_]*=* ]] || die "ENV: use KEY=value: $1"
    key=${pair%%=*}
    [[ -v STAGE_ENV[$key] ]] || STAGE_ENV_KEYS+=("$key")
    STAGE_ENV[$key]=$(env_value "${pair#*=}")
  done
}

do_copy() {
  local -a words sources matches
  local from="" word src root dest target m
  read -r -a words <<<"$1"
  [[ ${words[0]} == \[* ]] && die "COPY: use the plain form here, not JSON: $1"
  sources=()
  for word in "${words[@]}"; do
    case $word in
      --from=*) from=${word#--from=} ;;
      --chown=* | --link) ;; # ownership: the files stay the runner's; checked readable below
      --*) die "COPY: unsupported flag $word" ;;
      *) sources+=("$word") ;;
    esac
  done
  ((${#sources[@]} >= 2)) || die "COPY needs a source and a destination: $1"
  dest=${sources[-1]}
  unset 'sources[-1]'
  if [[ -n $from ]]; then
    [[ -v STAGE_DIRS[$from] ]] || die "COPY --from=$from: no such stage before this one"
    root=${STAGE_DIRS[$from]}
  else
    root="$WORK/context"
  fi
  target=$(to_host "$dest")
  local into_dir=0
  if [[ $dest == */ || ${#sources[@]} -gt 1 ]]; then into_dir=1; mkdir -p "$target"; fi
  shopt -s nullglob dotglob
  for src in "${sources[@]}"; do
    src=${src#/}
    # shellcheck disable=SC2206 # the source is a pattern, as in Docker
    matches=("$root"/$src)
    ((${#matches[@]} > 0)) || die "COPY: $src is not in the ${from:+stage $from}${from:-build context} (missing, or excluded by .dockerignore)"
    for m in "${matches[@]}"; do
      if [[ -d $m ]]; then
        mkdir -p "$target"
        cp -a "$m/." "$target/"
      elif [[ $into_dir == 1 || -d $target ]]; then
        cp -a "$m" "$target/"
      else
        mkdir -p "$(dirname "$target")"
        cp -a "$m" "$target"
      fi
    done
  done
  shopt -u nullglob dotglob
}

do_run() {
  local cmd=$1
  while [[ $cmd =~ ^--([a-z]+)=([^[:space:]]+)[[:space:]]+(.*)$ ]]; do
    case ${BASH_REMATCH[1]}=${BASH_REMATCH[2]} in
      mount=type=cache,*) ;; # a download cache: speeds builds up, never changes the result
      *) die "RUN: unsupported option --${BASH_REMATCH[1]}=${BASH_REMATCH[2]}" ;;
    esac
    cmd=${BASH_REMATCH[3]}
  done
  [[ $cmd == \[* ]] && die "RUN: use the shell form here, not JSON: $cmd"
  local absolute_re='(^|[[:space:];|&(=])(/[[:alnum:]_.][^[:space:]]*)'
  if [[ $cmd =~ $absolute_re && ${BASH_REMATCH[2]} != /dev/null ]]; then
    die "RUN uses the absolute path ${BASH_REMATCH[2]}; use a path relative to WORKDIR so the step runs outside an image too: $cmd"
  fi
  [[ $MODE == build ]] || return 0
  local -a envs=()
  mapfile -d '' envs < <(stage_env_args)
  local started=$SECONDS
  (cd "$(to_host "$WORKDIR_IMG")" && exec env "${envs[@]}" sh -c "$cmd") || die "RUN failed in stage $STAGE_NAME: $cmd"
  printf '    (%ss)\n' $((SECONDS - started))
}

# One instruction: $1 keyword (upper case), $2 the rest. Prints the plan line in --plan mode.
apply() {
  local keyword=$1 rest=$2 action
  case $keyword in
    FROM) action="new stage folder; the host's node $(node --version) stands in for the base image" ;;
    WORKDIR) action="mkdir in the stage folder" ;;
    ENV) action="environment of later RUN steps and of the container" ;;
    COPY) action="copy into the stage folder" ;;
    RUN) action="sh -c in WORKDIR" ;;
    USER) action="recorded: the checks below run as $(id -un), with every file checked readable by others" ;;
    EXPOSE | HEALTHCHECK | STOPSIGNAL | ENTRYPOINT | CMD) action="recorded: used by the run below" ;;
    LABEL) action="ignored: metadata only" ;;
    *) die "instruction $keyword is not handled by this script; add it here before using it in the Dockerfile" ;;
  esac
  # FROM names the stage it starts: apply it before printing.
  if [[ $keyword == FROM ]]; then do_from "$rest"; fi
  if [[ $MODE == plan ]]; then
    printf '%s\t%s\t%s\t%s\n' "$STAGE_NAME" "$keyword" "$rest" "$action"
  else
    say "[$STAGE_NAME] $keyword $rest"
  fi
  case $keyword in
    FROM) ;;
    WORKDIR) do_workdir "$rest" ;;
    ENV) do_env "$rest" ;;
    COPY) if [[ $MODE == build ]]; then do_copy "$rest"; fi ;;
    RUN) do_run "$rest" ;;
    USER) FINAL_USER=$rest ;;
    EXPOSE) FINAL_EXPOSE=$rest ;;
    STOPSIGNAL) FINAL_STOPSIGNAL=$rest ;;
    HEALTHCHECK)
      local health_re='(^|[[:space:]])CMD[[:space:]]+(\[.*\])$'
      [[ $rest =~ $health_re ]] || die "HEALTHCHECK: use CMD [\"...\"] (exec form): $rest"
      HEALTHCHECK_JSON=${BASH_REMATCH[2]}
      ;;
    ENTRYPOINT) ENTRYPOINT_JSON=$rest ;;
    CMD) CMD_JSON=$rest ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# The build context: the repository filtered by .dockerignore (Docker's matching rules:
# patterns relative to the root, `*` within one path segment, `**` across segments, `!`
# re-includes, the last matching pattern wins, and a matched folder excludes its contents).
# ---------------------------------------------------------------------------------------------
make_context() {
  node - "$REPO" "$DOCKERIGNORE" "$WORK/context" <<'NODE'
const fs = require('node:fs');
const path = require('node:path');
const [repo, ignoreFile, out] = process.argv.slice(2);
const escape = (c) => c.replace(/[.+^${}()|\\]/g, '\\$&');
function toRegex(pattern) {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') { const end = pattern.indexOf(']', i); re += pattern.slice(i, end + 1); i = end; }
    else re += escape(c);
  }
  return new RegExp(`^${re}$`);
}
const rules = (fs.existsSync(ignoreFile) ? fs.readFileSync(ignoreFile, 'utf8') : '')
  .split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  .map((l) => {
    const negate = l.startsWith('!');
    const p = path.posix.normalize((negate ? l.slice(1) : l).trim().replace(/^\/+/, '')).replace(/\/+$/, '');
    return { negate, re: toRegex(p), text: l };
  });
/** A path is excluded when the last pattern matching it or one of its parent folders excludes. */
function excluded(rel) {
  const parts = rel.split('/');
  let result = false;
  for (const rule of rules) {
    for (let n = 1; n <= parts.length; n++) {
      if (rule.re.test(parts.slice(0, n).join('/'))) { result = !rule.negate; break; }
    }
  }
  return result;
}
const mayReinclude = rules.some((r) => r.negate);
let files = 0;
function walk(rel) {
  for (const entry of fs.readdirSync(path.join(repo, rel), { withFileTypes: true })) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    const isDir = entry.isDirectory();
    if (excluded(child) && !(isDir && mayReinclude)) continue;
    const from = path.join(repo, child);
    const to = path.join(out, child);
    if (isDir) { walk(child); continue; }
    if (excluded(child)) continue;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else { fs.copyFileSync(from, to); fs.chmodSync(to, fs.statSync(from).mode & 0o777); }
    files++;
  }
}
fs.mkdirSync(out, { recursive: true });
walk('');
process.stdout.write(`    ${files} files in the build context\n`);
NODE
}

# ---------------------------------------------------------------------------------------------
# Running the last stage like a container
# ---------------------------------------------------------------------------------------------
free_ports() {
  node -e '
    const net = require("node:net");
    const servers = Array.from({ length: Number(process.argv[1]) }, () => net.createServer());
    Promise.all(servers.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)))))
      .then((ports) => { servers.forEach((s) => s.close()); process.stdout.write(ports.join(" ")); });
  ' "$1"
}

# Image paths in arguments (e.g. -c /etc/sidecar/sidecar.yaml) → the stage folder.
map_args() {
  local a
  for a in "$@"; do
    if [[ $a =~ ^/[^/] ]]; then printf '%s\0' "$STAGE_DIR$a"; else printf '%s\0' "$a"; fi
  done
}

# Becomes a command of the image (ENTRYPOINT, HEALTHCHECK), run in WORKDIR with the image's
# environment. It replaces the shell it runs in: call it in a subshell, `( image_exec ... )`,
# or in the background, where $! is then the command's own process id.
image_exec() {
  local -a envs=() mapped=()
  mapfile -d '' envs < <(stage_env_args)
  mapfile -d '' mapped < <(map_args "$@")
  cd "$(to_host "$WORKDIR_IMG")"
  exec env "${envs[@]}" "${mapped[@]}"
}

# Running and not a zombie (an exited child stays one until `wait`). Linux /proc.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

check_runtime_files() {
  local app unreadable
  app=$(to_host "$WORKDIR_IMG")
  say "checks on the runtime folder ($(du -sh "$app" | cut -f1), node_modules $(du -sh "$app/node_modules" 2>/dev/null | cut -f1))"
  # The lock file marks packages needed only by dev dependencies with "dev": true (a dev
  # dependency that a production one also needs, such as @types/node, is not marked).
  node - "$app" <<'NODE' || die "the runtime image holds packages only the build needs (above)"
const fs = require('node:fs');
const path = require('node:path');
const app = process.argv[2];
const lock = JSON.parse(fs.readFileSync(path.join(app, 'package-lock.json'), 'utf8'));
const devOnly = Object.entries(lock.packages).filter(([key, entry]) => key !== '' && entry.dev === true).map(([key]) => key);
const present = devOnly.filter((key) => fs.existsSync(path.join(app, key)));
for (const key of present) process.stderr.write(`    dev-only package installed: ${key}\n`);
if (present.length > 0) process.exit(1);
process.stdout.write(`    no dev-only package installed (${devOnly.length} checked)\n`);
NODE
  unreadable=$(find "$app" \( -type f ! -perm -o=r \) -o \( -type d ! -perm -o=rx \) | head -5)
  [[ -z $unreadable ]] || die "not readable by the image's non-root user ($FINAL_USER): $unreadable"
  printf '    every file readable by USER %s\n' "$FINAL_USER"
}

smoke_run() {
  local -a entrypoint=() cmd=() health=()
  local config_img="" i admin_port listener_port app_port config_host pid status=0 waited parsed watchdog
  parsed=$(json_args "$ENTRYPOINT_JSON")
  mapfile -t entrypoint <<<"$parsed"
  parsed=$(json_args "$CMD_JSON")
  mapfile -t cmd <<<"$parsed"
  parsed=$(json_args "$HEALTHCHECK_JSON")
  mapfile -t health <<<"$parsed"
  for ((i = 0; i < ${#cmd[@]}; i++)); do
    if [[ ${cmd[$i]} == -c || ${cmd[$i]} == --config ]]; then config_img=${cmd[$((i + 1))]:-}; fi
  done
  [[ -n $config_img ]] || die "CMD names no configuration file (-c FILE): $CMD_JSON"

  read -r admin_port listener_port app_port tls_port <<<"$(free_ports 4)"
  config_host=$(to_host "$config_img")
  say "mounting examples/sidecar.yaml at $config_img (admin :$admin_port, listener :$listener_port, app :$app_port)"
  mkdir -p "$(dirname "$config_host")"
  # The image's own yaml package rewrites the addresses: the example's ports may be taken.
  node - "$(to_host "$WORKDIR_IMG")" "$EXAMPLE_CONFIG" "$config_host" "$admin_port" "$listener_port" "$app_port" "$tls_port" <<'NODE'
const fs = require('node:fs');
const path = require('node:path');
const [app, source, target, admin, listener, upstream, tlsListener] = process.argv.slice(2);
const YAML = require(path.join(app, 'node_modules', 'yaml'));
const doc = YAML.parseDocument(fs.readFileSync(source, 'utf8'));
doc.setIn(['admin', 'address'], `127.0.0.1:${admin}`);
doc.setIn(['listeners', 0, 'address'], `127.0.0.1:${listener}`);
// Any further listener (the example's HTTPS one) gets a free port too.
doc.get('listeners').items.slice(1).forEach((item) => item.set('address', `127.0.0.1:${tlsListener}`));
for (const cluster of doc.get('clusters').items) {
  for (const endpoint of cluster.get('endpoints').items) endpoint.set('url', `http://127.0.0.1:${upstream}`);
}
doc.set('drain', doc.createNode({ delay: '0s', timeout: '5s' }));
fs.writeFileSync(target, doc.toString());
NODE

  say "docker run IMAGE validate --syntax-only $config_img (before its certificates exist)"
  (image_exec "${entrypoint[@]}" validate --syntax-only "$config_img") || die "sidecar validate --syntax-only rejected $config_img"
  # The example's HTTPS listener reads ../certs/ next to the config: made with the image's own
  # `sidecar certs`, as an operator without a certificate of their own would.
  local certs_img
  certs_img="$(dirname "$(dirname "$config_img")")/certs"
  say "docker run IMAGE certs --out $certs_img --host localhost"
  mkdir -p "$(to_host "$certs_img")"
  (image_exec "${entrypoint[@]}" certs --out "$certs_img" --host localhost >/dev/null) || die "sidecar certs failed"
  say "docker run IMAGE validate $config_img (the certificates it names too)"
  (image_exec "${entrypoint[@]}" validate "$config_img") || die "sidecar validate rejected $config_img"


  node "$DEMO_APP" --host 127.0.0.1 --port "$app_port" >"$WORK/app.log" 2>&1 &
  PIDS+=($!)

  say "docker run IMAGE (${entrypoint[*]} ${cmd[*]})"
  STAGE_ENV[SIDECAR_ADMIN_URL]="http://127.0.0.1:$admin_port"
  image_exec "${entrypoint[@]}" "${cmd[@]}" >"$WORK/sidecar.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  waited=0
  until curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/ready" 2>/dev/null; do
    alive "$pid" || { cat "$WORK/sidecar.log" >&2; die "the sidecar exited before it was ready"; }
    ((waited < READY_WAIT_SECONDS * 4)) || { cat "$WORK/sidecar.log" >&2; die "not ready after ${READY_WAIT_SECONDS}s"; }
    sleep 0.25
    waited=$((waited + 1))
  done
  printf '    /ready answered 200\n'

  (image_exec "${health[@]}") || die "the HEALTHCHECK command failed against a ready sidecar: ${health[*]}"
  printf '    HEALTHCHECK passed\n'

  local headers body code
  headers="$WORK/response.headers"
  body="$WORK/response.body"
  code=$(curl -sS -D "$headers" -o "$body" -w '%{http_code}' "http://127.0.0.1:$listener_port/") || die "no answer from the listener"
  [[ $code == 200 ]] || die "GET / answered $code through the sidecar, expected 200"
  grep -qi '^x-request-id: ' "$headers" || die "the response has no x-request-id"
  grep -q '"x-sidecar-attempt": "1"' "$body" || die "the app did not see x-sidecar-attempt: 1 (not proxied?)"
  printf '    GET / answered 200 through the sidecar, with x-request-id\n'

  say "docker stop (${FINAL_STOPSIGNAL})"
  kill -s "${FINAL_STOPSIGNAL#SIG}" "$pid"
  # The bound on a graceful stop, as docker stop's timeout: then SIGKILL (exit code 137).
  (sleep "$STOP_WAIT_SECONDS" && kill -KILL "$pid" 2>/dev/null) &
  watchdog=$!
  wait "$pid" || status=$?
  kill "$watchdog" 2>/dev/null || true
  ((status != 137)) || die "still running ${STOP_WAIT_SECONDS}s after $FINAL_STOPSIGNAL"
  ((status == 0)) || { cat "$WORK/sidecar.log" >&2; die "exit code $status after $FINAL_STOPSIGNAL, expected 0"; }
  printf '    exited with code 0\n'
}

# ---------------------------------------------------------------------------------------------
read_dockerfile
if [[ $MODE == build ]]; then
  command -v curl >/dev/null || die "curl is needed"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/sidecar-image.XXXXXX")
  say "build context (.dockerignore applied) in $WORK/context"
  make_context
fi
for instruction in "${INSTRUCTIONS[@]}"; do
  keyword=${instruction%%[[:space:]]*}
  rest=${instruction#"$keyword"}
  rest=${rest#"${rest%%[![:space:]]*}"}
  apply "${keyword^^}" "$rest"
done
[[ $MODE == plan ]] && exit 0

[[ -n $FINAL_USER && $FINAL_USER != root && $FINAL_USER != 0 && $FINAL_USER != 0:* ]] || die "the last stage must set a non-root USER"
[[ -n $ENTRYPOINT_JSON && -n $CMD_JSON ]] || die "the last stage needs ENTRYPOINT and CMD"
[[ -n $HEALTHCHECK_JSON ]] || die "the last stage needs a HEALTHCHECK"
check_runtime_files
smoke_run
say "the image of $BASE_IMAGE runs its own Node.js; these steps ran on the host's $(node --version)"
echo "dockerfile-steps: ok"
