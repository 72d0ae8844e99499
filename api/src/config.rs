//! The server's configuration as the code reads it; `crate::settings` reads it from flags
//! and the environment, with defaults that run on a fresh machine.
use std::net::SocketAddr;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CRM_LOG_FORMAT=json`: log lines as JSON objects.
    pub log_json: bool,
    /// `CRM_METRICS_LISTEN`: an address of its own serving `GET /metrics` (no token);
    /// default none.
    pub metrics_listen: Option<SocketAddr>,
    /// `CRM_METRICS_TOKEN`: serves `GET /metrics` on the main port to this bearer token;
    /// default none (no `/metrics` there).
    pub metrics_token: Option<String>,
    /// `CRM_TRUSTED_DOCUMENTS=only` with `CRM_TRUSTED_DOCUMENTS_MANIFEST`: the only
    /// documents that run, by SHA-256; default none (any document runs).
    pub trusted_documents: Option<std::sync::Arc<std::collections::HashMap<String, std::sync::Arc<str>>>>,
    /// `CRM_COMPILED_READS`: on PostgreSQL, answer the selections the database can build
    /// with one statement each (`service::compiled`); default on.
    pub compiled_reads: bool,
    /// `CRM_READ_DATABASE_URL`: a streaming replica heavy reads use while caught up
    /// (`service::kernel::replica`); default none.
    pub read_database_url: Option<String>,
    /// `CRM_REPLICA_MAX_LAG_MS`: the replica's lag bound; default 1000.
    pub replica_max_lag_ms: u64,
    /// `DATABASE_URL`; default `sqlite://crm.db` in the working directory.
    pub database_url: String,
    /// `CRM_LISTEN`; default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// `CRM_JWT_SECRET`; generated and stored in the database when unset.
    pub jwt_secret: Option<String>,
    /// `CRM_JWT_ISSUER`; default `crm`.
    pub jwt_issuer: String,
    /// `CRM_JWT_AUDIENCE`; default `crm-api`.
    pub jwt_audience: String,
    /// `CRM_ACCESS_TOKEN_TTL` in seconds; default 3600.
    pub access_token_ttl: i64,
    /// `CRM_ADMIN_EMAIL` / `CRM_ADMIN_PASSWORD` for the first admin of an empty database.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    /// `CRM_MAX_BODY_BYTES`; default 1 MiB.
    pub body_limit: usize,
    /// `CRM_SCHEDULER`: `off` disables the daily reclassification; default on.
    pub scheduler: bool,
    /// `CRM_RECLASSIFY_HOUR_UTC`: hour of the daily pass; default 18 (02:00 in China).
    pub reclassify_hour_utc: u32,
    /// `CRM_MAX_DEPTH`, `CRM_MAX_COMPLEXITY`.
    pub max_depth: usize,
    pub max_complexity: usize,
    /// `CRM_MAX_ROOT_FIELDS`: most root fields (aliases included) of one operation.
    pub max_root_fields: usize,
    /// `CRM_ANONYMOUS_INTROSPECTION`: `on` lets callers without a token introspect; default off.
    pub anonymous_introspection: bool,
    /// `CRM_MAX_RESPONSE_BYTES`: largest answer sent (HTTP and WebSocket); default 16 MiB.
    pub max_response_bytes: usize,
    /// Milliseconds a WebSocket may wait before `connection_init` (CRM_WS_INIT_TIMEOUT_MS, default 10000).
    pub ws_init_timeout_ms: u64,
    /// Milliseconds between re-checks of a WebSocket's user (CRM_WS_RECHECK_MS, default 30000).
    pub ws_recheck_ms: u64,
    /// `CRM_REFRESH_TOKEN_TTL` in seconds; default 30 days, at most 90.
    pub refresh_token_ttl: i64,
    /// `CRM_REFRESH_GRACE_SECS`: how long after a refresh token's exchange the same token
    /// gets the same new pair again (browser tabs refreshing at once); default 30, at most 300.
    pub refresh_grace_secs: i64,
    /// `CRM_LOGIN_ACCOUNT_FAILURES` (default 5) and `CRM_LOGIN_ADDRESS_FAILURES` (default 50):
    /// failed logins within 15 minutes before back-off starts.
    pub login_limits: service::access::throttle::LoginLimits,
    /// `CRM_TRUST_FORWARDED_FOR`: `on` behind a reverse proxy that sets `X-Forwarded-For`;
    /// the login back-off then counts the address the proxy saw (its last entry). Default off.
    pub trust_forwarded_for: bool,
    /// `CRM_REQUEST_TIMEOUT_MS`: longest time for one HTTP request, body upload included
    /// (TIMEOUT after it); default 30000.
    pub request_timeout_ms: u64,
    /// `CRM_MAX_REQUESTS_PER_USER`: one user's requests in flight at once on an instance;
    /// default 16, four below the pool (one user never holds it); a higher setting is
    /// logged as a warning.
    pub max_requests_per_user: usize,
    /// `CRM_DB_POOL_SIZE`: pooled database connections of an instance; default 20.
    pub pool_size: u32,
    /// `CRM_HEAVY_READS`: reports, key lists and exports running at once on an instance;
    /// default half the cores, at most a quarter of the pool less four (2 cores: 1).
    pub heavy_reads: usize,
    /// `CRM_MAX_SOCKETS_PER_USER`: one user's open WebSockets on an instance; default 20.
    pub max_sockets_per_user: usize,
    /// `CRM_HEADER_TIMEOUT_MS`: time for a client to send a request's headers, and for an
    /// idle keep-alive connection to start its next request; default 10000.
    pub header_timeout_ms: u64,
    /// `CRM_MAX_CONNECTIONS`: open connections (WebSockets included) an instance serves;
    /// beyond it new connections are closed at once. Default 20000.
    pub max_connections: usize,
    /// `CRM_MAX_CONNECTIONS_PER_ADDRESS`: open connections of one client address (an IPv6
    /// /64); default a tenth of `CRM_MAX_CONNECTIONS` (2000). Not applied behind a trusted proxy.
    pub max_connections_per_address: usize,
    /// `CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS`: WebSockets of one client address that have
    /// not sent a valid `connection_init` yet; default 32.
    pub max_anonymous_sockets_per_address: usize,
    /// Smallest group a report shows to a role that cannot read the customers in it.
    pub report_min_group: i64,
    /// Data keys for sensitive fields (`id:base64url,...`, the first seals); required on
    /// PostgreSQL, a key file beside the database on SQLite when absent.
    pub data_key: Option<String>,
    /// `CRM_IMPORT_MAX_BYTES`: largest CSV file an import reads; default 256 MiB.
    pub import_max_bytes: u64,
    /// `CRM_IMPORT_RETENTION_DAYS`: days a finished import run and its lines' outcomes are
    /// kept; default 30.
    pub import_retention_days: i64,
    /// `CRM_MATCH_BUDGET_PER_HOUR`: matches of one user against records they cannot read
    /// (duplicate candidates, import lines) per hour; default 20000.
    pub match_budget_per_hour: u32,
    /// `CRM_IMPORT_IDLE_MS`: how long an import upload may send nothing before it is
    /// stopped; default 60000.
    pub import_idle_ms: u64,
    /// Webhook delivery: `CRM_WEBHOOK_ALLOW_PRIVATE` (`on`: plain http and private
    /// receivers; default off), `CRM_WEBHOOK_TIMEOUT_MS` (default 10000),
    /// `CRM_WEBHOOK_RETRY_BASE_MS` (first retry, default 30000), `CRM_WEBHOOK_MAX_ATTEMPTS`
    /// (default 12), `CRM_WEBHOOK_DISABLE_AFTER` (failed attempts in a row, default 50).
    pub webhooks: service::webhook::Settings,
}

impl Config {
    /// The settings in the environment (`crate::settings::Settings`), checked.
    ///
    /// # Errors
    /// A message naming the setting that does not parse or does not hold.
    pub fn from_env() -> Result<Config, String> {
        crate::settings::Settings::from_env()?.resolve()
    }
}

/// Limits applied to every operation, over HTTP and WebSocket alike.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of fields, introspection (`__schema`, `__type`) excepted.
    pub depth: usize,
    /// Deepest nesting of an introspection query: client generators send graphql-js's
    /// `getIntrospectionQuery()`, about 13 deep (its `ofType` chain).
    pub introspection_depth: usize,
    pub complexity: usize,
    pub recursive_depth: usize,
    pub directives: usize,
    /// Most root fields (aliases included) of one operation (`CRM_MAX_ROOT_FIELDS`).
    pub root_fields: usize,
    /// Whether a caller without a token may introspect the schema (`CRM_ANONYMOUS_INTROSPECTION`).
    pub anonymous_introspection: bool,
    /// Largest answer sent, in bytes (`CRM_MAX_RESPONSE_BYTES`).
    pub response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 12,
            introspection_depth: 24,
            complexity: 50_000,
            recursive_depth: 32,
            directives: 10,
            root_fields: 100,
            anonymous_introspection: false,
            response_bytes: 16 * 1024 * 1024,
        }
    }
}
