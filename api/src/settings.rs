//! Every setting of the server, each a flag of `crm serve` and an environment variable
//! (clap's `env`; a flag wins over its variable), with its default in `crm serve --help`.
//! [`Settings::resolve`] checks them all at start (a bad value stops the server with the
//! setting's name, never at first use); `crm config` prints what is in effect, secrets
//! redacted ([`Config::describe`]).
use crate::config::Config;
use clap::Args;
use std::net::SocketAddr;

/// `on`/`off` (also true/false, 1/0, in any case); anything else is refused rather than
/// read as off (a switch such as `CRM_TRUST_FORWARDED_FOR` must not be guessed).
fn switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("'{other}' is neither on nor off (on, off, true, false, 1, 0)")),
    }
}

const MIB: u64 = 1024 * 1024;

/// The settings as given (flags, environment, defaults), before they are checked together.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Settings (each also an environment variable)")]
pub struct Settings {
    /// Database: `sqlite://FILE` (created when missing; the embedded default) or
    /// `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://crm.db", hide_env_values = true)]
    pub database_url: String,
    /// Address and port to serve on.
    #[arg(long, env = "CRM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Secret of access tokens (HS256), at least 32 bytes; when unset one is generated and
    /// kept in the database.
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Issuer (`iss`) of access tokens.
    #[arg(long, env = "CRM_JWT_ISSUER", default_value = "crm")]
    pub jwt_issuer: String,
    /// Audience (`aud`) of access tokens.
    #[arg(long, env = "CRM_JWT_AUDIENCE", default_value = "crm-api")]
    pub jwt_audience: String,
    /// Access-token lifetime in seconds (60 to 30 days).
    #[arg(long, env = "CRM_ACCESS_TOKEN_TTL", default_value_t = 3600,
        value_parser = clap::value_parser!(i64).range(60..=service::access::jwt::MAX_TTL_SECS))]
    pub access_token_ttl: i64,
    /// Refresh-token lifetime in seconds (1 h to 90 days); each exchange starts a new one.
    #[arg(long, env = "CRM_REFRESH_TOKEN_TTL", default_value_t = 30 * 86_400,
        value_parser = clap::value_parser!(i64).range(3600..=90 * 86_400))]
    pub refresh_token_ttl: i64,
    /// Seconds after an exchange in which the same refresh token gets the same new pair
    /// (browser tabs refreshing at once), 0 to 300.
    #[arg(long, env = "CRM_REFRESH_GRACE_SECS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=300))]
    pub refresh_grace_secs: i64,
    /// E-mail of the first admin, made when the database has no user.
    #[arg(long, env = "CRM_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of that first admin (printed once when generated).
    #[arg(long, env = "CRM_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Data keys sealing sensitive fields (`id:base64url,...`, the first seals; `crm
    /// data-key new`). Required on PostgreSQL; on SQLite a key file beside the database
    /// when unset.
    #[arg(long, env = "CRM_DATA_KEY", hide_env_values = true)]
    pub data_key: Option<String>,
    /// Runs the daily reclassification, care reminders, pool returns and webhook
    /// deliveries on this instance (on/off).
    #[arg(long, env = "CRM_SCHEDULER", default_value = "on", value_parser = switch, action = clap::ArgAction::Set)]
    pub scheduler: bool,
    /// Hour (UTC) of the daily pass; 18 is 02:00 in China.
    #[arg(long, env = "CRM_RECLASSIFY_HOUR_UTC", default_value_t = 18, value_parser = clap::value_parser!(u32).range(0..=23))]
    pub reclassify_hour_utc: u32,
    /// Largest request body in bytes.
    #[arg(long, env = "CRM_MAX_BODY_BYTES", default_value_t = MIB, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_body_bytes: u64,
    /// Deepest nesting of fields in an operation (introspection excepted).
    #[arg(long, env = "CRM_MAX_DEPTH", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_depth: u64,
    /// Largest complexity (cost) of an operation.
    #[arg(long, env = "CRM_MAX_COMPLEXITY", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_complexity: u64,
    /// Most root fields (aliases included) of one operation.
    #[arg(long, env = "CRM_MAX_ROOT_FIELDS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_root_fields: u64,
    /// Largest answer sent (HTTP and WebSocket), in bytes; a larger one is RESPONSE_TOO_LARGE.
    #[arg(long, env = "CRM_MAX_RESPONSE_BYTES", default_value_t = 16 * MIB, value_parser = clap::value_parser!(u64).range(4096..))]
    pub max_response_bytes: u64,
    /// Lets callers without a token introspect the schema (on/off).
    #[arg(long, env = "CRM_ANONYMOUS_INTROSPECTION", default_value = "off", value_parser = switch, action = clap::ArgAction::Set)]
    pub anonymous_introspection: bool,
    /// Milliseconds a WebSocket may wait before `connection_init`.
    #[arg(long, env = "CRM_WS_INIT_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub ws_init_timeout_ms: u64,
    /// Milliseconds between re-checks of a WebSocket's user.
    #[arg(long, env = "CRM_WS_RECHECK_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub ws_recheck_ms: u64,
    /// Failed logins of one account within 15 minutes before back-off starts.
    #[arg(long, env = "CRM_LOGIN_ACCOUNT_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_account_failures: u32,
    /// Failed logins from one address within 15 minutes before back-off starts.
    #[arg(long, env = "CRM_LOGIN_ADDRESS_FAILURES", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_address_failures: u32,
    /// Behind a reverse proxy that sets `X-Forwarded-For`: count the address it saw (its
    /// last entry) for the login back-off (on/off).
    #[arg(long, env = "CRM_TRUST_FORWARDED_FOR", default_value = "off", value_parser = switch, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
    /// Longest time for one HTTP request, body upload included (TIMEOUT after it).
    #[arg(long, env = "CRM_REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Time for a client to send a request's headers, and for an idle keep-alive
    /// connection to start its next request.
    #[arg(long, env = "CRM_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_timeout_ms: u64,
    /// Pooled database connections of this instance.
    #[arg(long, env = "CRM_DB_POOL_SIZE", default_value_t = service::kernel::db::DEFAULT_POOL_SIZE,
        value_parser = clap::value_parser!(u32).range(6..=1000))]
    pub db_pool_size: u32,
    /// One user's requests in flight at once; above the pool less four one user can hold
    /// the whole pool (allowed, warned about).
    #[arg(long, env = "CRM_MAX_REQUESTS_PER_USER", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_user: u64,
    /// Reports, key lists and exports running at once [default: half the cores, at most
    /// a quarter of the pool less four].
    #[arg(long, env = "CRM_HEAVY_READS", value_parser = clap::value_parser!(u64).range(1..))]
    pub heavy_reads: Option<u64>,
    /// One user's open WebSockets.
    #[arg(long, env = "CRM_MAX_SOCKETS_PER_USER", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sockets_per_user: u64,
    /// Open connections (WebSockets included) this instance serves; beyond it new ones
    /// are closed at once.
    #[arg(long, env = "CRM_MAX_CONNECTIONS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Open connections of one client address (an IPv6 /64) [default: a tenth of
    /// --max-connections, at least 16]; not applied behind a trusted proxy.
    #[arg(long, env = "CRM_MAX_CONNECTIONS_PER_ADDRESS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_address: Option<u64>,
    /// WebSockets of one client address that have not sent a valid `connection_init` yet.
    #[arg(long, env = "CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_anonymous_sockets_per_address: u64,
    /// Smallest group a report shows to a role that cannot read the customers in it.
    #[arg(long, env = "CRM_REPORT_MIN_GROUP", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
    pub report_min_group: i64,
    /// Largest CSV file an import reads, in bytes.
    #[arg(long, env = "CRM_IMPORT_MAX_BYTES", default_value_t = 256 * MIB, value_parser = clap::value_parser!(u64).range(1024..))]
    pub import_max_bytes: u64,
    /// Days a finished import run and its lines' outcomes are kept.
    #[arg(long, env = "CRM_IMPORT_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub import_retention_days: i64,
    /// Milliseconds an import upload may send nothing before it is stopped.
    #[arg(long, env = "CRM_IMPORT_IDLE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub import_idle_ms: u64,
    /// Matches of one user against records they cannot read (duplicate candidates,
    /// import lines) per hour.
    #[arg(long, env = "CRM_MATCH_BUDGET_PER_HOUR", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub match_budget_per_hour: u32,
    /// Webhooks may call plain `http://` and private, loopback and link-local receivers
    /// (development, an intranet) (on/off).
    #[arg(long, env = "CRM_WEBHOOK_ALLOW_PRIVATE", default_value = "off", value_parser = switch, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
    /// Longest wait for a webhook receiver's answer, in milliseconds.
    #[arg(long, env = "CRM_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub webhook_timeout_ms: u64,
    /// The first retry's delay in milliseconds; each further one doubles, up to six hours.
    #[arg(long, env = "CRM_WEBHOOK_RETRY_BASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub webhook_retry_base_ms: u64,
    /// Attempts of one delivery before it fails.
    #[arg(long, env = "CRM_WEBHOOK_MAX_ATTEMPTS", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=30))]
    pub webhook_max_attempts: i32,
    /// An address of its own serving `GET /metrics` (Prometheus text, no token), e.g.
    /// `127.0.0.1:9100`.
    #[arg(long, env = "CRM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serves `GET /metrics` on the main port to this bearer token (at least 16 bytes).
    #[arg(long, env = "CRM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Log lines as text, or as one JSON object per line.
    #[arg(long, env = "CRM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// `only`: run only the documents of `CRM_TRUSTED_DOCUMENTS_MANIFEST` (named by hash or
    /// sent whole); `off`: any document, and Apollo's persisted-query hashes are learnt.
    #[arg(long, env = "CRM_TRUSTED_DOCUMENTS", default_value = "off", value_parser = ["off", "only"])]
    pub trusted_documents: String,
    /// A persisted query manifest (Apollo's, or an object of SHA-256 to document).
    #[arg(long, env = "CRM_TRUSTED_DOCUMENTS_MANIFEST")]
    pub trusted_documents_manifest: Option<std::path::PathBuf>,
    /// A PostgreSQL streaming replica of `DATABASE_URL` that reports, key lists,
    /// completeness and exports read from while it is caught up (docs/replica.md).
    #[arg(long, env = "CRM_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// How far behind the primary the replica may be and still serve reads, in
    /// milliseconds; beyond it reads go to the primary.
    #[arg(long, env = "CRM_REPLICA_MAX_LAG_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub replica_max_lag_ms: u64,
    /// `on`: on PostgreSQL, a customer by id or the customer list with the fields the
    /// database can build (with contacts and deals) is answered by one SQL statement that
    /// builds the JSON; `off`: every field is resolved on its own (`docs/architecture.md`).
    #[arg(long, env = "CRM_COMPILED_READS", default_value = "on", value_parser = ["on", "off"])]
    pub compiled_reads: String,
    /// Failed attempts in a row after which a webhook is disabled.
    #[arg(long, env = "CRM_WEBHOOK_DISABLE_AFTER", default_value_t = 50, value_parser = clap::value_parser!(i32).range(1..))]
    pub webhook_disable_after: i32,
}

/// Only the settings, read from the environment (commands other than `serve`).
#[derive(clap::Parser)]
struct FromEnv {
    #[command(flatten)]
    settings: Settings,
}

/// Tidies the settings' environment variables as they were always read: a blank one is
/// unset, and spaces around a value (a CRLF `.env` file) do not count (clap would take
/// them as part of the value). Call it before any other thread starts.
pub fn unset_blank_variables() {
    use clap::CommandFactory;
    for arg in FromEnv::command().get_arguments() {
        let Some(name) = arg.get_env() else { continue };
        let Some(value) = std::env::var_os(name) else { continue };
        let value = value.to_string_lossy().into_owned();
        let trimmed = value.trim();
        // SAFETY (both): called at the start of `main`, before the runtime or any other
        // thread exists, so nothing reads the environment concurrently.
        if trimmed.is_empty() {
            unsafe { std::env::remove_var(name) };
        } else if trimmed.len() != value.len() {
            unsafe { std::env::set_var(name, trimmed) };
        }
    }
}

fn size(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Settings {
    /// The settings in the environment, with defaults for the rest.
    ///
    /// # Errors
    /// clap's message naming the setting that does not parse.
    pub fn from_env() -> Result<Settings, String> {
        <FromEnv as clap::Parser>::try_parse_from(["crm"]).map(|f| f.settings).map_err(|e| e.to_string())
    }

    /// Whether log lines are JSON, before anything else is checked.
    pub fn log_json(&self) -> bool {
        self.log_format == "json"
    }

    /// Checks the settings together and derives the defaults that depend on others.
    ///
    /// # Errors
    /// A message naming the setting and its environment variable.
    pub fn resolve(self) -> Result<Config, String> {
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("--jwt-secret (CRM_JWT_SECRET) must have at least 32 bytes".into());
        }
        if let Some(spec) = &self.data_key {
            service::kernel::vault::Keyring::parse(spec).map_err(|e| format!("--data-key (CRM_DATA_KEY): {e}"))?;
        }
        let url = self.database_url.trim();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("--database-url (DATABASE_URL) must start with sqlite: or postgres://".into());
        }
        let requests = size(self.max_requests_per_user);
        let room = usize::try_from(self.db_pool_size - 4).unwrap_or(usize::MAX);
        if requests > room {
            // Allowed (a benchmark drives one user over many connections), but then one
            // user can hold every pooled connection.
            tracing::warn!(
                requests,
                pool_size = self.db_pool_size,
                "CRM_MAX_REQUESTS_PER_USER is not below CRM_DB_POOL_SIZE less four: one user can take the whole pool"
            );
        }
        let heavy_reads = match self.heavy_reads.map(size) {
            Some(n) if n > room => {
                return Err(format!(
                    "--heavy-reads (CRM_HEAVY_READS) must be at most the pool less four ({room}); raise --db-pool-size"
                ));
            }
            Some(n) => n,
            None => heavy_default(room),
        };
        let max_connections = size(self.max_connections);
        let per_address = self.max_connections_per_address.map_or((max_connections / 10).max(16), size);
        if per_address > max_connections {
            return Err(format!(
                "--max-connections-per-address (CRM_MAX_CONNECTIONS_PER_ADDRESS) must be at most --max-connections ({max_connections})"
            ));
        }
        let ms = std::time::Duration::from_millis;
        if self.refresh_grace_secs >= self.access_token_ttl {
            return Err(format!(
                "--refresh-grace-secs (CRM_REFRESH_GRACE_SECS) must be shorter than --access-token-ttl ({} s)",
                self.access_token_ttl
            ));
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("--metrics-token (CRM_METRICS_TOKEN) must have at least 16 bytes".into());
        }
        let trusted_documents = match (self.trusted_documents.as_str(), &self.trusted_documents_manifest) {
            ("only", None) => {
                return Err("--trusted-documents only (CRM_TRUSTED_DOCUMENTS) needs \
                            --trusted-documents-manifest (CRM_TRUSTED_DOCUMENTS_MANIFEST)"
                    .into());
            }
            ("only", Some(path)) => {
                let unusable = |e: String| {
                    format!("--trusted-documents-manifest (CRM_TRUSTED_DOCUMENTS_MANIFEST) {}: {e}", path.display())
                };
                let text = std::fs::read_to_string(path).map_err(|e| unusable(e.to_string()))?;
                Some(std::sync::Arc::new(crate::documents::Documents::manifest(&text).map_err(unusable)?))
            }
            (_, manifest) => {
                if let Some(path) = manifest {
                    tracing::warn!(
                        manifest = %path.display(),
                        "CRM_TRUSTED_DOCUMENTS_MANIFEST is set but CRM_TRUSTED_DOCUMENTS is off: any document runs"
                    );
                }
                None
            }
        };
        if self.metrics_listen.is_some_and(|m| m == self.listen) {
            return Err("--metrics-listen (CRM_METRICS_LISTEN) must differ from --listen".into());
        }
        Ok(Config {
            log_json: self.log_json(),
            metrics_listen: self.metrics_listen,
            metrics_token: self.metrics_token,
            trusted_documents,
            compiled_reads: self.compiled_reads == "on",
            read_database_url: self.read_database_url.clone(),
            replica_max_lag_ms: self.replica_max_lag_ms,
            database_url: url.to_string(),
            listen: self.listen,
            jwt_secret: self.jwt_secret,
            jwt_issuer: self.jwt_issuer,
            jwt_audience: self.jwt_audience,
            access_token_ttl: self.access_token_ttl,
            admin_email: self.admin_email,
            admin_password: self.admin_password,
            body_limit: size(self.max_body_bytes),
            scheduler: self.scheduler,
            reclassify_hour_utc: self.reclassify_hour_utc,
            max_depth: size(self.max_depth),
            max_complexity: size(self.max_complexity),
            max_root_fields: size(self.max_root_fields),
            anonymous_introspection: self.anonymous_introspection,
            max_response_bytes: size(self.max_response_bytes),
            ws_init_timeout_ms: self.ws_init_timeout_ms,
            ws_recheck_ms: self.ws_recheck_ms,
            refresh_token_ttl: self.refresh_token_ttl,
            refresh_grace_secs: self.refresh_grace_secs,
            login_limits: service::access::throttle::LoginLimits {
                account: self.login_account_failures,
                address: self.login_address_failures,
            },
            trust_forwarded_for: self.trust_forwarded_for,
            request_timeout_ms: self.request_timeout_ms,
            max_requests_per_user: requests,
            pool_size: self.db_pool_size,
            heavy_reads,
            max_sockets_per_user: size(self.max_sockets_per_user),
            header_timeout_ms: self.header_timeout_ms,
            max_connections,
            max_connections_per_address: per_address,
            max_anonymous_sockets_per_address: size(self.max_anonymous_sockets_per_address),
            report_min_group: self.report_min_group,
            data_key: self.data_key,
            import_max_bytes: self.import_max_bytes,
            import_retention_days: self.import_retention_days,
            match_budget_per_hour: self.match_budget_per_hour,
            import_idle_ms: self.import_idle_ms,
            webhooks: service::webhook::Settings {
                allow_private: self.webhook_allow_private,
                timeout: ms(self.webhook_timeout_ms),
                retry_base: ms(self.webhook_retry_base_ms),
                max_attempts: self.webhook_max_attempts,
                disable_after: self.webhook_disable_after,
            },
        })
    }
}

/// Heavy reads at once by default: each keeps a core busy while it scans, so half the
/// cores (the rest answer everyone else), and at most a quarter of what the pool leaves.
fn heavy_default(room: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    (cores / 2).clamp(1, (room / 4).max(1))
}

/// A database URL with its password replaced, in the user part and in the query
/// (`?password=`); a URL that does not parse keeps nothing between `://` and its last `@`.
fn without_password(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start => format!("{}://***{}", &url[..start], &url[at..]),
            _ => url.to_string(),
        };
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("password")) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let hidden = k.to_ascii_lowercase().contains("password");
                (k.into_owned(), if hidden { "***".into() } else { v.into_owned() })
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

impl Config {
    /// What is in effect, one line per setting as `crm config` prints it: the variable,
    /// the value, secrets as `(set)` or `(unset)`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let secret = |v: &Option<String>| if v.is_some() { "(set)" } else { "(unset)" }.to_string();
        let on = |b: bool| if b { "on" } else { "off" }.to_string();
        let or_unset = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        let w = &self.webhooks;
        vec![
            ("DATABASE_URL", without_password(&self.database_url)),
            ("CRM_LISTEN", self.listen.to_string()),
            ("CRM_JWT_SECRET", secret(&self.jwt_secret)),
            ("CRM_JWT_ISSUER", self.jwt_issuer.clone()),
            ("CRM_JWT_AUDIENCE", self.jwt_audience.clone()),
            ("CRM_ACCESS_TOKEN_TTL", self.access_token_ttl.to_string()),
            ("CRM_REFRESH_TOKEN_TTL", self.refresh_token_ttl.to_string()),
            ("CRM_REFRESH_GRACE_SECS", self.refresh_grace_secs.to_string()),
            ("CRM_ADMIN_EMAIL", or_unset(&self.admin_email)),
            ("CRM_ADMIN_PASSWORD", secret(&self.admin_password)),
            ("CRM_DATA_KEY", secret(&self.data_key)),
            ("CRM_SCHEDULER", on(self.scheduler)),
            ("CRM_RECLASSIFY_HOUR_UTC", self.reclassify_hour_utc.to_string()),
            ("CRM_MAX_BODY_BYTES", self.body_limit.to_string()),
            ("CRM_MAX_DEPTH", self.max_depth.to_string()),
            ("CRM_MAX_COMPLEXITY", self.max_complexity.to_string()),
            ("CRM_MAX_ROOT_FIELDS", self.max_root_fields.to_string()),
            ("CRM_MAX_RESPONSE_BYTES", self.max_response_bytes.to_string()),
            ("CRM_ANONYMOUS_INTROSPECTION", on(self.anonymous_introspection)),
            ("CRM_WS_INIT_TIMEOUT_MS", self.ws_init_timeout_ms.to_string()),
            ("CRM_WS_RECHECK_MS", self.ws_recheck_ms.to_string()),
            ("CRM_LOGIN_ACCOUNT_FAILURES", self.login_limits.account.to_string()),
            ("CRM_LOGIN_ADDRESS_FAILURES", self.login_limits.address.to_string()),
            ("CRM_TRUST_FORWARDED_FOR", on(self.trust_forwarded_for)),
            ("CRM_REQUEST_TIMEOUT_MS", self.request_timeout_ms.to_string()),
            ("CRM_HEADER_TIMEOUT_MS", self.header_timeout_ms.to_string()),
            ("CRM_DB_POOL_SIZE", self.pool_size.to_string()),
            ("CRM_MAX_REQUESTS_PER_USER", self.max_requests_per_user.to_string()),
            ("CRM_HEAVY_READS", self.heavy_reads.to_string()),
            ("CRM_MAX_SOCKETS_PER_USER", self.max_sockets_per_user.to_string()),
            ("CRM_MAX_CONNECTIONS", self.max_connections.to_string()),
            ("CRM_MAX_CONNECTIONS_PER_ADDRESS", self.max_connections_per_address.to_string()),
            ("CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS", self.max_anonymous_sockets_per_address.to_string()),
            ("CRM_REPORT_MIN_GROUP", self.report_min_group.to_string()),
            ("CRM_IMPORT_MAX_BYTES", self.import_max_bytes.to_string()),
            ("CRM_IMPORT_RETENTION_DAYS", self.import_retention_days.to_string()),
            ("CRM_IMPORT_IDLE_MS", self.import_idle_ms.to_string()),
            ("CRM_MATCH_BUDGET_PER_HOUR", self.match_budget_per_hour.to_string()),
            ("CRM_WEBHOOK_ALLOW_PRIVATE", on(w.allow_private)),
            ("CRM_WEBHOOK_TIMEOUT_MS", w.timeout.as_millis().to_string()),
            ("CRM_WEBHOOK_RETRY_BASE_MS", w.retry_base.as_millis().to_string()),
            ("CRM_WEBHOOK_MAX_ATTEMPTS", w.max_attempts.to_string()),
            ("CRM_WEBHOOK_DISABLE_AFTER", w.disable_after.to_string()),
            ("CRM_LOG_FORMAT", if self.log_json { "json" } else { "text" }.to_string()),
            ("CRM_METRICS_LISTEN", self.metrics_listen.map_or_else(|| "(unset)".into(), |a| a.to_string())),
            ("CRM_METRICS_TOKEN", secret(&self.metrics_token)),
            ("CRM_COMPILED_READS", on(self.compiled_reads)),
            (
                "CRM_READ_DATABASE_URL",
                self.read_database_url.as_deref().map_or_else(|| "(unset)".into(), without_password),
            ),
            ("CRM_REPLICA_MAX_LAG_MS", self.replica_max_lag_ms.to_string()),
            ("CRM_TRUSTED_DOCUMENTS", if self.trusted_documents.is_some() { "only" } else { "off" }.to_string()),
            (
                "CRM_TRUSTED_DOCUMENTS_MANIFEST",
                self.trusted_documents
                    .as_ref()
                    .map_or_else(|| "(unset)".into(), |m| format!("({} documents)", m.len())),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["crm"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map_err(|e| e.to_string())?.settings.resolve()
    }

    #[test]
    fn every_setting_is_a_flag_with_its_variable_and_described() {
        let help = Cli::command().render_long_help().to_string();
        let described: Vec<&str> = parse(&[]).unwrap().describe().into_iter().map(|(name, _)| name).collect();
        let flags: Vec<String> = Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(flags.len(), described.len(), "every flag is described once: {flags:?} {described:?}");
        for name in &flags {
            assert!(described.contains(&name.as_str()), "{name} is in `crm config`");
            assert!(help.contains(&format!("[env: {name}")), "{name} is in --help");
        }
        assert!(help.contains("[default: 127.0.0.1:8080]"), "defaults are listed");
        // The operation limits' defaults are the ones the schema is built with.
        let (c, l) = (parse(&[]).unwrap(), crate::config::Limits::default());
        assert_eq!(
            (c.max_depth, c.max_complexity, c.max_root_fields, c.max_response_bytes),
            (l.depth, l.complexity, l.root_fields, l.response_bytes)
        );
    }

    #[test]
    fn flags_set_values_and_bad_ones_are_named() {
        let c =
            parse(&["--listen", "0.0.0.0:9000", "--scheduler", "off", "--db-pool-size", "40", "--heavy-reads", "3"])
                .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(!c.scheduler);
        assert_eq!((c.pool_size, c.heavy_reads), (40, 3));
        let bad = parse(&["--access-token-ttl", "5"]).unwrap_err();
        assert!(bad.contains("--access-token-ttl"), "{bad}");
        let bad = parse(&["--refresh-grace-secs", "120", "--access-token-ttl", "60"]).unwrap_err();
        assert!(bad.contains("CRM_REFRESH_GRACE_SECS"), "{bad}");
        let bad = parse(&["--trust-forwarded-for", "yes"]).unwrap_err();
        assert!(bad.contains("neither on nor off"), "a switch is never guessed: {bad}");
        assert!(parse(&["--trust-forwarded-for", "ON"]).unwrap().trust_forwarded_for);
        let bad = parse(&["--scheduler", "sometimes"]).unwrap_err();
        assert!(bad.contains("neither on nor off"), "{bad}");
        let bad = parse(&["--heavy-reads", "99"]).unwrap_err();
        assert!(bad.contains("CRM_HEAVY_READS"), "{bad}");
        let bad = parse(&["--jwt-secret", "short"]).unwrap_err();
        assert!(bad.contains("32 bytes"), "{bad}");
        let bad = parse(&["--data-key", "nonsense"]).unwrap_err();
        assert!(bad.contains("CRM_DATA_KEY"), "{bad}");
        let bad = parse(&["--database-url", "mysql://x"]).unwrap_err();
        assert!(bad.contains("DATABASE_URL"), "{bad}");
    }

    #[test]
    fn secrets_are_redacted() {
        let c = parse(&[
            "--database-url",
            "postgres://crm:hunter22@db.example/crm",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef-secret",
            "--admin-password",
            "pa55word-of-admin",
        ])
        .unwrap();
        let text = format!("{:?}", c.describe());
        for secret in ["hunter22", "0123456789abcdef", "pa55word"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("postgres://crm:***@db.example/crm"), "{text}");
        for (url, secret) in [
            ("postgres://crm:p#ss@db/crm", "p#ss"),
            ("postgres://db/crm?user=crm&password=s3cret-query", "s3cret-query"),
        ] {
            let shown = without_password(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
    }
}
