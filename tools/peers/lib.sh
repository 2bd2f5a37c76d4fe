# Shared by the scripts under tools/peers (source it; it starts nothing by itself): one
# authledger server on a fresh data dir with the benchmark fixtures, stopped by its PID; the
# local nginx upstream the gateway jobs call.
# The caller sets AL_PORT, and W for al_cleanup; the server's PID is AL_PID.

PEERS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# side_by_side_lua NAME OUT: the side-by-side recipe's Lua body NAME.lua, as it writes it.
side_by_side_lua() {
  sed -n "/^cat > \"\$W\/lua\/$1.lua\" <<'LUA'/,/^LUA/p" "$PEERS/openbao/side-by-side.sh" | sed '1d;$d' > "$2"
  [ -s "$2" ] || { echo "no $1.lua in side-by-side.sh" >&2; exit 1; }
}

# proc_ticks PID: the process's user + system CPU so far, in clock ticks (0 once it is gone).
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# al_envs DATA_DIR RUST_LOG: AL_ENVS, the documented benchmark environment (BENCHMARKS.md,
# agents suite), then AL_EXTRA_ENVS (NAME=value ...; e.g. the distributed deployment's
# AUTHLEDGER_NATS_URL) and nothing else of the caller's.
al_envs() {
  AL_ENVS=(PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" RUST_LOG="$2"
    AUTHLEDGER_DATA_DIR="$1" AUTHLEDGER_LISTEN="127.0.0.1:$AL_PORT"
    AUTHLEDGER_RATE_LIMIT_PER_SEC=1000000000 AUTHLEDGER_RATE_LIMIT_BURST=1000000000
    AUTHLEDGER_DENIAL_RATE_LIMIT_PER_SEC=1000000000 AUTHLEDGER_DENIAL_RATE_LIMIT_BURST=1000000000
    AUTHLEDGER_WORKSPACE_RATE_LIMIT_PER_SEC=1000000000 AUTHLEDGER_WORKSPACE_RATE_LIMIT_BURST=1000000000
    AUTHLEDGER_ALLOW_LOOPBACK_URLS=true AUTHLEDGER_CHECKPOINT_SCHEDULE=off AUTHLEDGER_REFRESH_SCHEDULE=off
    ${AL_EXTRA_ENVS[@]+"${AL_EXTRA_ENVS[@]}"})
}

# al_serve BINARY DATA_DIR BOOTSTRAP_JSON SERVER_LOG RUST_LOG: DATA_DIR
# emptied, `bootstrap --workspace bench` (its answer to BOOTSTRAP_JSON), then `serve` in its own
# session (output to SERVER_LOG, bootstrap's log lines too) until /healthz answers (30 s at
# most). Sets ADMIN_KEY, AL_PID. AL_LAUNCH (an array, e.g. valgrind and its options) runs
# `serve` under it; AL_WAIT_TRIES (quarter seconds, 120 unless set) bounds the wait.
al_serve() {
  local bin=$1 dir=$2
  rm -rf "$dir"; mkdir -p "$dir"
  al_envs "$dir" "$5"
  env -i "${AL_ENVS[@]}" "$bin" bootstrap --workspace bench > "$3" 2> "$4"
  ADMIN_KEY=$(jq -r .admin_api_key "$3")
  setsid env -i "${AL_ENVS[@]}" ${AL_LAUNCH[@]+"${AL_LAUNCH[@]}"} "$bin" serve >> "$4" 2>&1 < /dev/null &
  AL_PID=$!
  for _ in $(seq 1 "${AL_WAIT_TRIES:-120}"); do curl -sf -o /dev/null "http://127.0.0.1:$AL_PORT/healthz" && break; sleep 0.25; done
}

# al_wait_workspace: until the admin key reads its workspace (10 s at most).
al_wait_workspace() {
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN_KEY" "http://127.0.0.1:$AL_PORT/v1/workspace")" = 200 ] && break; sleep 0.1
  done
}

alapi() {  # alapi METHOD PATH KEY [JSON]
  if [ $# -ge 4 ]; then
    curl -sS -X "$1" "http://127.0.0.1:$AL_PORT$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' -d "$4"
  else
    curl -sS -X "$1" "http://127.0.0.1:$AL_PORT$2" -H "Authorization: Bearer $3"
  fi
}

# al_fixtures API_KEY UPSTREAM DESCRIPTION TOOL_JSON: with ADMIN_KEY, an agent key
# (AL_AGENT_KEY), an API-key auth config (AL_AUTH_CONFIG), bench-user's connection holding
# API_KEY (AL_CONN; the whole answer in AL_CONN_JSON) and the tool custom.bench_echo, GET
# UPSTREAM/echo (its answer to TOOL_JSON). Exports nothing.
al_fixtures() {
  AL_AGENT_KEY=$(alapi POST /v1/api-keys "$ADMIN_KEY" '{"name":"bench agent","role":"agent"}' | jq -r .key)
  AL_AUTH_CONFIG=$(alapi POST /v1/auth-configs "$ADMIN_KEY" \
    '{"name":"bench","provider":"custom","auth_type":"api_key","api_key":{"key_name":"X-Api-Key","location":"header","prefix":null}}' | jq -r .id)
  AL_CONN_JSON=$(alapi POST /v1/connections "$ADMIN_KEY" \
    "{\"auth_config_id\":\"$AL_AUTH_CONFIG\",\"user_id\":\"bench-user\",\"credentials\":{\"api_key\":\"$1\"}}")
  AL_CONN=$(echo "$AL_CONN_JSON" | jq -r .id)
  alapi POST /v1/tools "$ADMIN_KEY" "{\"name\":\"custom.bench_echo\",\"provider\":\"custom\",\"description\":\"$3\",\"method\":\"GET\",\"base_url\":\"$2\",\"path\":\"/echo\",\"parameters\":{\"type\":\"object\"},\"required_scopes\":[],\"risk\":\"read\"}" > "$4"
}

# al_stop: the server this script started (AL_PID), if any, stopped; al_cleanup also removes W.
al_stop() {
  if [ -n "$AL_PID" ]; then kill "$AL_PID" 2>/dev/null || true; wait "$AL_PID" 2>/dev/null || true; fi
}
al_cleanup() { al_stop; rm -rf "$W"; }

# nginx_upstream DIR PORT: a local nginx (one worker) answering GET /echo with a static
# 27-byte JSON, its files under DIR; sets NGINX_PID and UPSTREAM and waits until it answers.
# DIR's parents must be readable by nginx's workers.
nginx_upstream() {
  local ng=$1
  rm -rf "$ng"; mkdir -p "$ng/www" "$ng/logs"
  printf '%s' '{"ok":true,"items":[1,2,3]}' > "$ng/www/echo"
  chmod 755 "$ng" "$ng/www"; chmod 644 "$ng/www/echo"
  cat > "$ng/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$2;
    root $ng/www;
    location = /echo { }
  }
}
NGX
  nginx -p "$ng" -c "$ng/nginx.conf" > "$ng/logs/stdout.log" 2>&1 < /dev/null &
  NGINX_PID=$!
  UPSTREAM="http://127.0.0.1:$2"
  for _ in $(seq 1 40); do curl -sf -o /dev/null "$UPSTREAM/echo" && break; sleep 0.25; done
}
