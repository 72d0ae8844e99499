//! Configuration from the environment, with defaults that run on a fresh machine.
use std::net::SocketAddr;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
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

/// Heavy reads at once by default: each keeps a core busy while it scans, so half the
/// cores (the rest answer everyone else), and at most a quarter of what the pool leaves.
fn heavy_default(room: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    (cores / 2).clamp(1, (room / 4).max(1))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        Some(v) => v.trim().parse().map_err(|_| format!("{name}: cannot parse '{v}'")),
        None => Ok(default),
    }
}

impl Config {
    /// Reads the environment.
    ///
    /// # Errors
    /// A message naming the variable that does not parse.
    pub fn from_env() -> Result<Config, String> {
        let limits = Limits::default();
        let ttl = parsed("CRM_ACCESS_TOKEN_TTL", 3600i64)?;
        if !(60..=service::access::jwt::MAX_TTL_SECS).contains(&ttl) {
            return Err(format!(
                "CRM_ACCESS_TOKEN_TTL must be between 60 and {} seconds",
                service::access::jwt::MAX_TTL_SECS
            ));
        }
        let refresh_ttl = parsed("CRM_REFRESH_TOKEN_TTL", 30 * 86_400i64)?;
        if !(3600..=90 * 86_400).contains(&refresh_ttl) {
            return Err("CRM_REFRESH_TOKEN_TTL must be between 3600 and 7776000 seconds (90 days)".into());
        }
        let login = service::access::throttle::LoginLimits::default();
        if var("CRM_JWT_SECRET").is_some_and(|s| s.len() < 32) {
            return Err("CRM_JWT_SECRET must have at least 32 bytes".into());
        }
        let pool_size = parsed("CRM_DB_POOL_SIZE", service::kernel::db::DEFAULT_POOL_SIZE)?.clamp(6, 1000);
        let requests = parsed("CRM_MAX_REQUESTS_PER_USER", 16usize)?.max(1);
        let room = usize::try_from(pool_size - 4).unwrap_or(usize::MAX);
        if requests > room {
            // Allowed (a benchmark drives one user over many connections), but then one
            // user can hold every pooled connection.
            tracing::warn!(
                requests,
                pool_size,
                "CRM_MAX_REQUESTS_PER_USER is not below CRM_DB_POOL_SIZE less four: one user can take the whole pool"
            );
        }
        let max_connections = parsed("CRM_MAX_CONNECTIONS", 20_000usize)?.max(1);
        Ok(Config {
            pool_size,
            heavy_reads: parsed("CRM_HEAVY_READS", heavy_default(room))?.clamp(1, room),
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite://crm.db".into()),
            listen: parsed("CRM_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            jwt_secret: var("CRM_JWT_SECRET"),
            jwt_issuer: var("CRM_JWT_ISSUER").unwrap_or_else(|| "crm".into()),
            jwt_audience: var("CRM_JWT_AUDIENCE").unwrap_or_else(|| "crm-api".into()),
            access_token_ttl: ttl,
            admin_email: var("CRM_ADMIN_EMAIL"),
            admin_password: var("CRM_ADMIN_PASSWORD"),
            body_limit: parsed("CRM_MAX_BODY_BYTES", 1024 * 1024usize)?,
            scheduler: !matches!(var("CRM_SCHEDULER").as_deref(), Some("off" | "false" | "0")),
            reclassify_hour_utc: parsed("CRM_RECLASSIFY_HOUR_UTC", 18u32)?.min(23),
            max_depth: parsed("CRM_MAX_DEPTH", limits.depth)?,
            max_complexity: parsed("CRM_MAX_COMPLEXITY", limits.complexity)?,
            max_root_fields: parsed("CRM_MAX_ROOT_FIELDS", limits.root_fields)?,
            max_response_bytes: parsed("CRM_MAX_RESPONSE_BYTES", limits.response_bytes)?.max(4096),
            anonymous_introspection: matches!(var("CRM_ANONYMOUS_INTROSPECTION").as_deref(), Some("on" | "true" | "1")),
            ws_init_timeout_ms: parsed("CRM_WS_INIT_TIMEOUT_MS", 10_000)?,
            ws_recheck_ms: parsed("CRM_WS_RECHECK_MS", 30_000u64)?.max(100),
            refresh_token_ttl: refresh_ttl,
            refresh_grace_secs: parsed("CRM_REFRESH_GRACE_SECS", 30i64)?.clamp(0, 300),
            login_limits: service::access::throttle::LoginLimits {
                account: parsed("CRM_LOGIN_ACCOUNT_FAILURES", login.account)?.max(1),
                address: parsed("CRM_LOGIN_ADDRESS_FAILURES", login.address)?.max(1),
            },
            trust_forwarded_for: matches!(var("CRM_TRUST_FORWARDED_FOR").as_deref(), Some("on" | "true" | "1")),
            request_timeout_ms: parsed("CRM_REQUEST_TIMEOUT_MS", 30_000u64)?.max(1),
            max_requests_per_user: requests,
            max_sockets_per_user: parsed("CRM_MAX_SOCKETS_PER_USER", 20usize)?.max(1),
            header_timeout_ms: parsed("CRM_HEADER_TIMEOUT_MS", 10_000u64)?.max(100),
            max_connections,
            max_connections_per_address: parsed("CRM_MAX_CONNECTIONS_PER_ADDRESS", (max_connections / 10).max(16))?
                .clamp(1, max_connections),
            max_anonymous_sockets_per_address: parsed("CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS", 32usize)?.max(1),
            report_min_group: parsed("CRM_REPORT_MIN_GROUP", 5i64)?.max(1),
            data_key: var("CRM_DATA_KEY"),
            import_max_bytes: parsed("CRM_IMPORT_MAX_BYTES", 256 * 1024 * 1024u64)?.max(1024),
            import_retention_days: parsed("CRM_IMPORT_RETENTION_DAYS", 30i64)?.clamp(1, 3650),
            match_budget_per_hour: parsed("CRM_MATCH_BUDGET_PER_HOUR", 20_000u32)?.max(1),
            import_idle_ms: parsed("CRM_IMPORT_IDLE_MS", 60_000u64)?.max(100),
            webhooks: {
                let d = service::webhook::Settings::default();
                let ms = |name: &str, default: std::time::Duration| -> Result<std::time::Duration, String> {
                    let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
                    Ok(std::time::Duration::from_millis(parsed(name, default)?.clamp(100, 3_600_000)))
                };
                service::webhook::Settings {
                    allow_private: matches!(var("CRM_WEBHOOK_ALLOW_PRIVATE").as_deref(), Some("on" | "true" | "1")),
                    timeout: ms("CRM_WEBHOOK_TIMEOUT_MS", d.timeout)?.min(std::time::Duration::from_secs(60)),
                    retry_base: ms("CRM_WEBHOOK_RETRY_BASE_MS", d.retry_base)?,
                    max_attempts: parsed("CRM_WEBHOOK_MAX_ATTEMPTS", d.max_attempts)?.clamp(1, 30),
                    disable_after: parsed("CRM_WEBHOOK_DISABLE_AFTER", d.disable_after)?.max(1),
                }
            },
        })
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
