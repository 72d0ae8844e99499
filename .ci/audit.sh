#!/usr/bin/env bash
# graphql-http's auditServer (npm) against the server on a fresh SQLite database: 0 errors
# and at most 2 warnings, or CI fails. Installs the audit package from .ci/audit's lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

(cd .ci/audit && npm ci --no-audit --no-fund --silent)
cargo build --bin crm --quiet

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password="audit-$(date +%s)-password"
# The audit sends its ~60 requests at once as one user: lift the per-user cap (edge.rs tests it).
DATABASE_URL="sqlite://$dir/audit.db" CRM_LISTEN="127.0.0.1:$port" CRM_SCHEDULER=off CRM_MAX_REQUESTS_PER_USER=1000 \
  CRM_ADMIN_EMAIL=audit@example.com CRM_ADMIN_PASSWORD="$password" RUST_LOG=warn \
  target/debug/crm serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
node .ci/audit/audit.mjs "http://127.0.0.1:$port/graphql" audit@example.com "$password"
