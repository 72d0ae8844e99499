# Sourced by the CI scripts that need a running server: builds `crm`, starts it on a fresh
# SQLite database in a temporary directory with the environment given as arguments
# (NAME=value ...), waits for /healthz, and stops it and removes the directory on exit.
# Sets: dir, port, server. Also `install_missing COMMAND PACKAGE`: Debian's PACKAGE when
# COMMAND is not on this machine (CI's next machine starts without it).
install_missing() {
  command -v "$1" >/dev/null && return 0
  apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$2" >/dev/null; }
}
cargo build --bin crm --quiet
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
start_server() {
  env DATABASE_URL="sqlite://$dir/ci.db" CRM_LISTEN="127.0.0.1:$port" CRM_SCHEDULER=off RUST_LOG=warn "$@" \
    target/debug/crm serve >"$dir/server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    sleep 0.2
  done
  cat "$dir/server.log" >&2
  return 1
}
