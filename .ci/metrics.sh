#!/usr/bin/env bash
# A Prometheus scrape of a running server passes `promtool check metrics` (Debian's
# prometheus package, installed here if missing). The server runs on a fresh SQLite
# database with CRM_METRICS_LISTEN; a few requests first so that every kind of series is there.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/serve.sh
install_missing promtool prometheus
metrics=$(free_port)
password="metrics-$(date +%s)-password"
start_server CRM_METRICS_LISTEN="127.0.0.1:$metrics" CRM_ADMIN_EMAIL=metrics@example.com CRM_ADMIN_PASSWORD="$password"
gql() { curl -s -H 'content-type: application/json' "$@" "http://127.0.0.1:$port/graphql" >/dev/null; }
gql -d '{"query":"mutation Login{login(email:\"metrics@example.com\",password:\"wrong\"){accessToken}}","operationName":"Login"}'
gql -d "{\"query\":\"mutation{login(email:\\\"metrics@example.com\\\",password:\\\"$password\\\"){accessToken}}\"}"
gql -d '{"query":"{me{id}}"}'
curl -s "http://127.0.0.1:$port/nowhere" >/dev/null
curl -sf "http://127.0.0.1:$metrics/metrics" >"$dir/scrape.txt"
grep -q '^crm_http_requests_total{' "$dir/scrape.txt"
promtool check metrics <"$dir/scrape.txt"
echo "metrics: $(grep -c '^crm_' "$dir/scrape.txt") samples pass promtool check metrics"
