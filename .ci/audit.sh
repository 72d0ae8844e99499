#!/usr/bin/env bash
# graphql-http's auditServer (npm) against the server on a fresh SQLite database: 0 errors
# and at most 2 warnings, or CI fails. Installs the audit package from .ci/audit's lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

(cd .ci/audit && npm ci --no-audit --no-fund --silent)
. .ci/serve.sh
password="audit-$(date +%s)-password"
# The audit sends its ~60 requests at once as one user: lift the per-user cap (edge.rs tests it).
start_server CRM_MAX_REQUESTS_PER_USER=1000 CRM_ADMIN_EMAIL=audit@example.com CRM_ADMIN_PASSWORD="$password"
node .ci/audit/audit.mjs "http://127.0.0.1:$port/graphql" audit@example.com "$password"
