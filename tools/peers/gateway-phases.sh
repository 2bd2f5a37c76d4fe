#!/usr/bin/env bash
# Where a gateway call's time goes at one client: each binary on the embedded default
# (fresh data dir) executes the side-by-side recipe's tool (GET of a local nginx answering
# 27 bytes) with wrk -t1 -c1 for DUR s after WARMUP s, then prints the call's p50 and p99
# and the mean of each phase of `authledger_tool_call_phase_seconds` over the measured run
# (from /metrics): prepare (key, target, checks), requested (`tool.requested` signed and
# durable), upstream (the call and the scrubbing), completed (after the answer: the
# `tool.completed` append, flushed with the next call's).
#
#   bash tools/peers/gateway-phases.sh NAME=/path/to/authledger [NAME2=/path/to/other ...]
#
# Overrides: DUR WARMUP AL_PORT UP_PORT. Everything it starts is stopped by PID; traffic
# to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: gateway-phases.sh NAME=/path/to/authledger ..." >&2; exit 2; }
DUR=${DUR:-8} WARMUP=${WARMUP:-3} AL_PORT=${AL_PORT:-28330} UP_PORT=${UP_PORT:-28399}
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
W=$(mktemp -d); chmod a+rx "$W"
AL_PID="" NGINX_PID=""
trap 'al_cleanup; [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true' EXIT
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light; }

nginx_upstream "$W/nginx" "$UP_PORT"
side_by_side_lua al_exec "$W/al_exec.lua"

phases() { curl -s "$1/metrics" | grep -E '^authledger_tool_call_phase_seconds_(sum|count)' || true; }

for spec in "$@"; do
  name=${spec%%=*} bin=${spec#*=}
  al_serve "$bin" "$W/data" "$W/boot.json" "$W/server.log" info
  al_fixtures bench-upstream-key "$UPSTREAM" "Benchmark tool" /dev/null
  export AL_AGENT_KEY AL_CONN
  u="http://127.0.0.1:$AL_PORT"
  RUN_ID=warm wrk -t1 -c1 -d"${WARMUP}s" -s "$W/al_exec.lua" "$u/v1/tools/execute" > /dev/null
  phases "$u" > "$W/before"
  RUN_ID=measured wrk -t1 -c1 -d"${DUR}s" --latency -s "$W/al_exec.lua" "$u/v1/tools/execute" > "$W/wrk.txt"
  phases "$u" > "$W/after"
  python3 - "$name" "$W/before" "$W/after" "$W/wrk.txt" <<'PY'
import re, sys
name, before, after, wrk = sys.argv[1:5]
text = open(wrk).read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
def read(path):
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in open(path))}
a, b = read(before), read(after)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cells = [f"p50 {ms('50%'):.3f} ms", f"p99 {ms('99%'):.2f} ms", f"non-2xx {bad.group(1) if bad else 0}"]
for key in sorted(b):
    if "_sum" in key:
        count = key.replace("_sum", "_count")
        n = b[count] - a.get(count, 0)
        if n:
            phase = re.search(r'phase="([^"]+)"', key).group(1)
            cells.append(f"{phase} {(b[key] - a.get(key, 0)) / n * 1000:.3f} ms")
print(f"{name}: " + ", ".join(cells))
PY
  al_stop; AL_PID=""
done
