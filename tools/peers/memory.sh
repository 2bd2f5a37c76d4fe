#!/usr/bin/env bash
# Where a server's memory goes as live tokens pile up: one authledger binary on the embedded
# default (fresh data dir), STEPS times TOKENS scoped tokens (wrk -t2 -c64, the side-by-side
# recipe's token body, TTL 900 s), and after each step (and 5 s of rest) its RSS split by
# kind of mapping from /proc/<pid>/smaps:
#   heap  the Rust heap (mimalloc's arenas: requests, caches of folds and tails, buffers)
#   C     anonymous 64 MiB-aligned regions: glibc malloc's arenas, where SQLite's page
#         caches and statements live (SQLite allocates with the C allocator), thread stacks
#   file  file-backed and shared mappings (the binary, libraries, SQLite's -shm files)
#
#   bash tools/peers/memory.sh /path/to/authledger [more binaries...]
#
# Binaries run one after the other. Overrides: TOKENS (per step, default 200000) STEPS
# (default 3) AL_PORT. Everything it starts is stopped by PID; traffic to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: memory.sh /path/to/authledger ..." >&2; exit 2; }
TOKENS=${TOKENS:-200000} STEPS=${STEPS:-3} AL_PORT=${AL_PORT:-28340}
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
W=$(mktemp -d)
AL_PID=""
trap al_cleanup EXIT
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
side_by_side_lua al_token "$W/al_token.lua"

U=http://127.0.0.1:$AL_PORT

# MiB of RSS by kind of mapping: "heap C file total".
by_kind() {
  python3 - "/proc/$1/smaps" <<'PY'
import re, sys
kinds = {"heap": 0, "C": 0, "file": 0}
kind = None
for line in open(sys.argv[1]):
    m = re.match(r"^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        start, name = int(m.group(1), 16), m.group(2).strip()
        if name and not name.startswith("["):
            kind = "file"
        elif start >= 0x7f0000000000 or name.startswith("[stack"):
            kind = "C"
        else:
            kind = "heap"
    elif line.startswith("Rss:"):
        kinds[kind] += int(line.split()[1])
print(" ".join(f"{v / 1024:.1f}" for v in kinds.values()), f"{sum(kinds.values()) / 1024:.1f}")
PY
}

echo "| binary | live tokens | req/s of the step | Rust heap MiB | C allocator and stacks MiB | files MiB | RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for BIN in "$@"; do
  al_serve "$BIN" "$W/data" "$W/boot.json" "$W/server.log" warn
  al_wait_workspace
  al_fixtures "bench-key-$RANDOM$RANDOM" http://127.0.0.1:9 "Benchmark tool." /dev/null
  export AL_AGENT_KEY AL_CONN AL_TTL=900
  name=$(basename "$BIN")
  sleep 5
  echo "| $name | 0 | | $(by_kind "$AL_PID" | tr ' ' '|' | sed 's/|/ | /g') |"
  for step in $(seq 1 "$STEPS"); do
    rm -f "$W/done"
    LIMIT_PER_THREAD=$(( TOKENS / 2 )) DONE_FILE="$W/done" \
      wrk -t2 -c64 -d600s -s "$W/al_token.lua" "$U/v1/tokens" > "$W/wrk.txt" 2>&1 &
    wpid=$!
    while kill -0 "$wpid" 2>/dev/null; do
      if [ -f "$W/done" ] && [ "$(wc -l < "$W/done")" -ge 2 ]; then kill -INT "$wpid"; break; fi
      sleep 0.2
    done
    wait "$wpid" || true
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$W/wrk.txt")
    sleep 5
    echo "| $name | $(( step * TOKENS )) | $rps | $(by_kind "$AL_PID" | tr ' ' '|' | sed 's/|/ | /g') |"
  done
  kill "$AL_PID"; wait "$AL_PID" 2>/dev/null || true; AL_PID=""
done
