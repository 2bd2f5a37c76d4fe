#!/usr/bin/env bash
# Instructions per request, by part: a count that does not move with the host's load, for
# changes too small for the timed runs' noise (ab.sh sees ±20 % between rounds of one
# binary here). Each binary serves on the embedded default (fresh data dir) under
# valgrind's callgrind; one keep-alive client sends WARM requests of each job uncounted,
# then N counted: token issuance, credential write (a new user and a 600-character key
# each), gateway call (GET of a local nginx answering 27 bytes). Prints per binary and job
# the instructions per request in all threads, and per part (inclusive: a part's callees
# are in it, so parts overlap).
#
#   bash tools/peers/instructions.sh NAME=/path/to/authledger [NAME2=/path/to/other ...]
#
# What it does not show: time in the kernel (system calls, the flush), waiting, cache
# misses. At one client every append is a group of one, so per-commit work counts once
# per request (under load it is shared). valgrind's CPU has no SHA extensions: SHA-256 runs
# in software there and counts ~5x what it costs natively; compare it between builds, not
# with the timed profiles. Work on timers (WAL checkpoints every 20 ms, idle polls) varies
# between runs (±50,000 instructions per request in "all threads" here): compare a
# request's own part ("HTTP connection") across builds. Overrides: N WARM JOBS ("tokens writes gateway") AL_PORT UP_PORT
# KEEP=dir (keeps each callgrind file as dir/NAME-JOB.out for callgrind_annotate).
# Everything it starts is stopped by PID; traffic to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: instructions.sh NAME=/path/to/authledger ..." >&2; exit 2; }
N=${N:-300} WARM=${WARM:-200} JOBS=${JOBS:-"tokens writes gateway"}
AL_PORT=${AL_PORT:-28340} UP_PORT=${UP_PORT:-28341}
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; }
need valgrind valgrind; need nginx nginx-light; need jq jq
W=$(mktemp -d); chmod a+rx "$W"
AL_PID="" NGINX_PID=""
trap 'al_cleanup; [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true' EXIT
nginx_upstream "$W/nginx" "$UP_PORT"

# The parts shown: "label|name|another name…", the first name callgrind lists (inclusive;
# the others are where the compiler may have inlined the first).
PARTS=(
  "HTTP connection (all of a request's handling)|authledger::server::accept_loop::{{closure}}::{{closure}}"
  "ed25519 signatures|SigningKey as signature::signer::Signer<ed25519::Signature>>::try_sign"
  "event hash (SHA-256 of the envelope)|authledger::ledger::envelope::event_hash"
  "log writer thread|authledger::ledger::sqlite_log::run_writer"
  "projector thread|authledger::projector::store::sqlite_batch::run|authledger::projector::store::sqlite_batch::BatchWriter::start::{{closure}}"
  "data keys thread|authledger::crypto::key_writer::insert_group"
  "WAL checkpoints|sqlite3WalCheckpoint"
  "aggregate loads (Ledger::load)|authledger::ledger::writer::Ledger::load::{{closure}}"
  "log tail checks|authledger::ledger::sqlite_log::tail_inline"
  "scrubber built|authledger::gateway::scrub::Scrubber::new"
  "upstream call|authledger::gateway::upstream::call::{{closure}}"
  "tool.completed (after the answer)|authledger::gateway::completion::spawn::{{closure}}"
  "JSON string escaping|serde_json::ser::format_escaped_str"
  "allocator (mimalloc)|mi_malloc_aligned"
)

client() {  # client JOB COUNT TAG: COUNT requests over one keep-alive connection
  python3 - "$@" <<'PY'
import http.client, json, os, sys
job, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", int(os.environ["AL_PORT"]))
agent = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["AL_AGENT_KEY"]}
admin = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["AL_ADMIN_KEY"]}
for i in range(n):
    if job == "tokens":
        body = {"connection_id": os.environ["AL_CONN"], "ttl_seconds": 300, "tool": "custom.bench_echo"}
        path, headers = "/v1/tokens", agent
    elif job == "gateway":
        body = {"tool": "custom.bench_echo", "connection_id": os.environ["AL_CONN"], "arguments": {}}
        path, headers = "/v1/tools/execute", agent
    else:
        body = {"auth_config_id": os.environ["AL_AUTH_CONFIG"], "user_id": f"{tag}-{i}",
                "credentials": {"api_key": "k" * 600}}
        path, headers = "/v1/connections", admin
    c.request("POST", path, json.dumps(body, separators=(",", ":")), headers)
    r = c.getresponse()
    r.read()
    if r.status not in (200, 201):
        sys.exit(f"{job}: {path} answered {r.status}")
PY
}

measure() {  # measure NAME BIN JOB: one fresh server under callgrind, WARM + N requests
  local name=$1 bin=$2 job=$3 out="$W/$1-$3.out"
  AL_LAUNCH=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out")
  AL_WAIT_TRIES=600 al_serve "$bin" "$W/data" "$W/boot.json" "$W/server.log" warn
  al_fixtures bench-upstream-key "$UPSTREAM" "Benchmark tool" /dev/null
  export AL_AGENT_KEY AL_CONN AL_AUTH_CONFIG AL_ADMIN_KEY=$ADMIN_KEY AL_PORT
  client "$job" "$WARM" warm
  callgrind_control -i on "$AL_PID" > /dev/null
  client "$job" "$N" counted
  callgrind_control -i off "$AL_PID" > /dev/null
  callgrind_control -d "$AL_PID" > /dev/null
  al_stop; AL_PID=""
  # The dump holds the counted requests (the file without a suffix is the empty rest).
  [ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$out.1" "$KEEP/$name-$job.out"; }
  report "$name" "$job" "$out.1"
}

report() {  # report NAME JOB FILE
  local annotated total
  annotated=$(callgrind_annotate --inclusive=yes --threshold=100 "$3" 2>/dev/null)
  total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' <<< "$annotated")
  printf '| %s | %s | all threads | %d |\n' "$1" "$2" $((total / N))
  for part in "${PARTS[@]}"; do
    local label=${part%%|*} names ir=""
    IFS='|' read -r -a names <<< "${part#*|}"
    for name in "${names[@]}"; do
      ir=$(grep -F -m1 -- "$name [" <<< "$annotated" | awk '{gsub(",", "", $1); print $1}' || true)
      [ -z "$ir" ] || break
    done
    if [ -n "$ir" ] && [ "$ir" -gt 0 ]; then
      printf '| %s | %s | %s | %d |\n' "$1" "$2" "$label" $((ir / N))
    fi
  done
}

echo "| binary | job | part | instructions per request |"
echo "|---|---|---|---:|"
for job in $JOBS; do
  for spec in "$@"; do
    measure "${spec%%=*}" "${spec#*=}" "$job"
  done
done
