//! Shared state of a running server.
use crate::config::Limits;
use sea_orm::DatabaseConnection;
use service::access::JwtKeys;

/// What every request can reach: one [`Shared`], cloned by reference (axum clones the
/// state for each middleware and handler of every request; a clone of the fields was 5%
/// of the server's samples on a by-id lookup).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The server's state (see [`AppState`]).
pub struct Shared {
    pub db: DatabaseConnection,
    pub jwt: JwtKeys,
    pub limits: Limits,
    /// SQL statements run so far.
    pub sql_statements: service::kernel::db::StatementCounter,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Live events (subscriptions).
    pub events: service::access::live::Events,
    /// Subscriptions shared by subscribers who read the same (`views.rs`).
    pub views: crate::views::Views,
    /// Tells open WebSockets the server is going away.
    pub shutdown: crate::shutdown::Shutdown,
    /// How long a WebSocket may wait before `connection_init`.
    pub ws_init_timeout: std::time::Duration,
    /// How often an open WebSocket re-checks its user (active, role, department, session).
    pub ws_recheck: std::time::Duration,
    /// Cached actors, per-user caps, session changes.
    pub sessions: service::access::Sessions,
    /// Back-off of failed logins.
    pub login_limits: service::access::throttle::LoginLimits,
    /// HTTP: the edge's limits (`serve_on`, `http.rs`).
    pub edge: Edge,
    /// Privacy settings (`docs/privacy.md`).
    pub privacy: Privacy,
    /// CSV imports (`import.rs`).
    pub imports: Imports,
    /// Webhook delivery (`webhooks.rs`).
    pub webhooks: service::webhook::Settings,
    /// The matching budget (`service::access::budget`).
    pub matching: service::access::budget::MatchBudget,
    /// WebSockets of each client address that have not authenticated yet (`addresses.rs`).
    pub anonymous_sockets: crate::addresses::PerAddress,
    /// The share of the pool heavy reads may hold (`service::access::heavy`).
    pub heavy: service::access::heavy::HeavyReads,
    /// The bearer token of `/metrics` on the main port, if it is served there.
    pub metrics_token: Option<std::sync::Arc<str>>,
    /// The compiled reads' connections and statements (`crate::schema::compiled`), when
    /// reads are compiled to one statement where they can be: `CRM_COMPILED_READS` on
    /// PostgreSQL.
    pub compiled: Option<service::compiled::Compiler>,
    /// Persisted and trusted documents (`crate::documents`).
    pub documents: std::sync::Arc<crate::documents::Documents>,
}

/// Limits of CSV imports.
#[derive(Debug, Clone, Copy)]
pub struct Imports {
    pub max_bytes: u64,
    /// Longest wait for the next bytes of an upload.
    pub idle_timeout: std::time::Duration,
    /// Days a finished run and its lines are kept.
    pub retention_days: i64,
}

/// Privacy settings.
#[derive(Debug, Clone)]
pub struct Privacy {
    /// Report groups smaller than this are suppressed for roles that cannot read their
    /// customers (k-anonymity's k).
    pub min_group: i64,
    /// The data keys sealing sensitive fields.
    pub keys: std::sync::Arc<service::kernel::vault::Keyring>,
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub request_timeout: std::time::Duration,
    pub header_timeout: std::time::Duration,
    pub max_connections: usize,
    /// Connections of one client address (`addresses.rs`).
    pub max_connections_per_address: usize,
    /// Take the client address from the last `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}
