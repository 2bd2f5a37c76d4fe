#!/usr/bin/env bash
# What a change bought: several authledger binaries in one run, interleaved rounds, the
# side-by-side recipe's load (wrk, same Lua bodies) on the embedded default, each round on
# a fresh data dir.
#
#   bash tools/peers/ab.sh NAME=/path/to/authledger NAME2=/path/to/other ...
#
# Jobs per binary and round: token issuance and credential write at 64 clients (DUR s),
# then at one client (C1DUR s), after WARMUP s of warm-up each. CONCS="1 2 4 16 64" (and
# WCONCS for credential writes) runs those concurrencies instead, DUR s each: how a change
# to batching behaves between one client and many. Prints one markdown row
# per binary, job and round (req/s, p50, p99, service CPU per request and RSS after the
# run, from /proc) and the medians. Overrides: ROUNDS DUR C1DUR WARMUP AL_PORT CONCS WCONCS. PERF_DIR=dir also records each
# measured run with `perf record -g` (Debian's linux-perf) into dir/NAME-ROUND-JOB.data
# (PERF_CALLGRAPH=dwarf PERF_FREQ=199 for stacks through code built without frame pointers;
# read with `perf report -i …`; the recording costs the service some CPU: compare
# profiles with profiles). Everything it starts is stopped by PID; traffic to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: ab.sh NAME=/path/to/authledger ..." >&2; exit 2; }
ROUNDS=${ROUNDS:-3} DUR=${DUR:-10} C1DUR=${C1DUR:-5} WARMUP=${WARMUP:-3}
AL_PORT=${AL_PORT:-28330}
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
W=$(mktemp -d)
AL_PID=""
trap al_cleanup EXIT
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

# The side-by-side recipe's Lua bodies for jobs A and B, as it writes them.
for f in al_token al_conn; do side_by_side_lua "$f" "$W/$f.lua"; done
TCK=$(getconf CLK_TCK)
# The machine's stolen and total CPU ticks: a VM whose host is busy runs slower without
# anything on it changing (each row says how much was stolen during its run).
steal_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t}' /proc/stat; }

start() {  # start BINARY: fresh data dir, bootstrap, serve, agent key, auth config, connection, tool
  al_serve "$1" "$W/data" "$W/boot.json" "$W/server.log" info
  al_fixtures k http://127.0.0.1:9 "Benchmark tool" /dev/null
  export AL_AGENT_KEY AL_AUTH_CONFIG AL_CONN AL_ADMIN_KEY=$ADMIN_KEY
}

run() {  # run NAME ROUND JOB THREADS CONNS SECS LUA URL
  local name=$1 round=$2 job=$3 t=$4 c=$5 d=$6 lua=$7 url=$8 out c0 c1 n
  RUN_ID="$name-$round-$job-warm" wrk -t"$t" -c"$c" -d"${WARMUP}s" -s "$lua" "$url" > /dev/null
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -F "${PERF_FREQ:-499}" --call-graph "${PERF_CALLGRAPH:-fp}" -p "$AL_PID" -o "$PERF_DIR/$name-$round-$job.data" -- sleep "$d" 2>/dev/null &
    perf_pid=$!
  fi
  c0=$(proc_ticks "$AL_PID"); s0=$(steal_ticks)
  out=$(RUN_ID="$name-$round-$job" wrk -t"$t" -c"$c" -d"${d}s" --latency -s "$lua" "$url")
  c1=$(proc_ticks "$AL_PID"); s1=$(steal_ticks)
  local stolen
  stolen=$(echo "$s0 $s1" | awk '{d = $4 - $2; printf "%.0f", (d > 0 ? 100 * ($3 - $1) / d : 0)}')
  if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  local rss
  rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$AL_PID/status")
  echo "$out" | python3 -c '
import re, sys
name, rnd, job, n, ticks, tck, stolen, rss = sys.argv[1:9]
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cpu_us = int(ticks) / int(tck) * 1e6 / max(int(n), 1)
p50, p99 = ms("50%"), ms("99%")
print("\t".join([name, rnd, job, f"{rps:.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{cpu_us:.0f}", bad.group(1) if bad else "0", stolen, rss]))
' "$name" "$round" "$job" "$n" "$((c1 - c0))" "$TCK" "$stolen" "$rss" | tee -a "$W/rows.tsv"
}

sweep() {  # sweep NAME ROUND JOB LUA URL CONC...: one run per concurrency (wrk's threads: 2, 1 for one client)
  local name=$1 round=$2 job=$3 lua=$4 url=$5 c
  shift 5
  for c in "$@"; do
    run "$name" "$round" "${job}_c$(printf %02d "$c")" "$(( c > 1 ? 2 : 1 ))" "$c" "$DUR" "$lua" "$url"
  done
}

echo -e "binary\tround\tjob\treq/s\tp50 ms\tp99 ms\tservice CPU us/req\tnon-2xx\tstolen %\tRSS MiB after" | tee "$W/rows.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    start "$bin"
    u="http://127.0.0.1:$AL_PORT"
    if [ -n "${CONCS:-}${WCONCS:-}" ]; then
      sweep "$name" "$r" tokens "$W/al_token.lua" "$u/v1/tokens" ${CONCS:-}
      sweep "$name" "$r" write "$W/al_conn.lua" "$u" ${WCONCS:-}
    else
      run "$name" "$r" tokens_c64 2 64 "$DUR" "$W/al_token.lua" "$u/v1/tokens"
      run "$name" "$r" write_c64 2 64 "$DUR" "$W/al_conn.lua" "$u"
      run "$name" "$r" tokens_c1 1 1 "$C1DUR" "$W/al_token.lua" "$u/v1/tokens"
      run "$name" "$r" write_c1 1 1 "$C1DUR" "$W/al_conn.lua" "$u"
    fi
    kill "$AL_PID"; wait "$AL_PID" 2>/dev/null || true; AL_PID=""
  done
done
python3 - "$W/rows.tsv" <<'PY'
import csv, statistics as st, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))[1:]
print("\n| binary | job | req/s median (min–max) | p50 ms | p99 ms | service CPU µs/req | CPU stolen % | RSS MiB after |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
keys = sorted({(r[0], r[2]) for r in rows}, key=lambda k: (k[1], [r[0] for r in rows].index(k[0])))
for name, job in keys:
    sel = [r for r in rows if r[0] == name and r[2] == job]
    col = lambda i: [float(r[i]) for r in sel]
    cell = lambda v, nd: f"{st.median(v):,.{nd}f} ({min(v):,.{nd}f}–{max(v):,.{nd}f})"
    print(f"| {name} | {job} | {cell(col(3), 0)} | {cell(col(4), 2)} | {cell(col(5), 2)} | {cell(col(6), 0)} | {cell(col(8), 0)} | {cell(col(9), 0)} |")
PY
