#!/usr/bin/env bash
# The explorer at GET /graphql renders in a real browser with the network restricted to the
# server: Debian's headless Chromium (installed here if missing) driven by playwright-core
# (from the npm registry, into a temporary directory) runs .ci/explorer.mjs against a fresh
# server: log in, the schema browser lists Customer, a query and a subscription run, and no
# request leaves the server's origin.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/serve.sh
install_missing chromium chromium
password="explorer-$(date +%s)-password"
start_server CRM_ADMIN_EMAIL=explorer@example.com CRM_ADMIN_PASSWORD="$password"
mkdir -p "$dir/pw"
cp .ci/explorer.mjs "$dir/pw/"
(cd "$dir/pw" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null)
BASE="http://127.0.0.1:$port" EMAIL=explorer@example.com PASSWORD="$password" node "$dir/pw/explorer.mjs"
