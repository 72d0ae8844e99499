//! The CRM API: GraphQL over axum on SeaORM (SQLite or PostgreSQL).
pub mod access_log;
pub mod addresses;
pub mod capped;
pub mod config;
pub mod documents;
pub mod downloads;
pub mod http;
pub mod import;
pub mod meters;
pub mod schema;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod views;
pub mod webhooks;
pub mod ws;

use config::Config;
use migration::MigratorTrait;
use sea_orm::DatabaseConnection;
use service::access::JwtKeys;
use state::AppState;

/// Builds the router for a ready state.
pub fn app(state: AppState) -> axum::Router {
    let schema = schema::builder(state.limits).data(state.clone()).finish();
    let checked =
        schema::builder(state.limits).data(state.clone()).validation_mode(async_graphql::ValidationMode::Fast).finish();
    http::router(http::Http { state, schema, checked })
}

/// Runs pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    migration::Migrator::up(db, None).await?;
    // A database from before search gets its keys once (`docs/search.md`).
    if let Some(done) =
        service::search::index::fill_if_empty(db).await.map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?
    {
        tracing::info!(customers = done.customers, terms = done.terms, "search keys built");
    }
    Ok(())
}

/// Connects, migrates, resolves the JWT secret and first admin: everything `serve` needs.
///
/// # Errors
/// A message for the operator.
pub async fn prepare(config: &Config) -> Result<AppState, String> {
    // The metrics recorder, before anything counts (once per process).
    meters::handle();
    let keys = data_keys(config)?;
    let sql_statements = service::kernel::db::StatementCounter::default();
    let db = service::kernel::db::connect_counted(&config.database_url, sql_statements.clone(), config.pool_size)
        .await
        .map_err(|e| format!("cannot open database: {e}"))?;
    migrate(&db).await.map_err(|e| format!("migration failed: {e}"))?;
    restrict_sqlite_files(&config.database_url);
    service::customer::tally::keep_folded(&db).await;
    service::kernel::db::spawn_checkpointer(&config.database_url, std::time::Duration::from_secs(5))
        .await
        .map_err(|e| format!("cannot open database: {e}"))?;
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => {
            let (secret, created) = service::kernel::setting::get_or_create(
                &db,
                service::kernel::setting::JWT_SECRET,
                service::kernel::random_secret,
            )
            .await
            .map_err(|e| format!("cannot read settings: {e}"))?;
            tracing::warn!(
                created,
                "CRM_JWT_SECRET is not set: using a secret generated and kept in the database; set CRM_JWT_SECRET in production"
            );
            secret
        }
    };
    ensure_first_admin(&db, config).await?;
    let limits = crate::config::Limits {
        depth: config.max_depth,
        complexity: config.max_complexity,
        anonymous_introspection: config.anonymous_introspection,
        root_fields: config.max_root_fields,
        response_bytes: config.max_response_bytes,
        ..Default::default()
    };
    let sessions = service::access::Sessions::new(service::access::session::UserCaps {
        requests: config.max_requests_per_user,
        sockets: config.max_sockets_per_user,
    });
    let events = service::access::live::Events::start(db.clone(), sessions.clone()).await?;
    let replica = read_replica(config, &db).await?;
    // As many connections as the main pool: a compiled read holds one for one statement.
    let compiled = (config.compiled_reads && db.get_database_backend() == sea_orm::DatabaseBackend::Postgres)
        .then(|| service::kernel::lane::Lane::new(&config.database_url, config.pool_size, sql_statements.clone()))
        .transpose()
        .map(|lane| lane.map(service::compiled::Compiler::new))
        .map_err(|e| format!("cannot open database: {e}"))?;
    Ok(AppState::new(state::Shared {
        compiled,
        db,
        jwt: JwtKeys::new(
            secret.as_bytes(),
            config.jwt_issuer.clone(),
            config.jwt_audience.clone(),
            chrono::Duration::seconds(config.access_token_ttl),
            chrono::Duration::seconds(config.refresh_token_ttl),
        )
        .with_refresh_grace(chrono::Duration::seconds(config.refresh_grace_secs)),
        limits,
        sql_statements,
        body_limit: config.body_limit,
        events,
        views: Default::default(),
        shutdown: shutdown::Shutdown::default(),
        ws_init_timeout: std::time::Duration::from_millis(config.ws_init_timeout_ms),
        ws_recheck: std::time::Duration::from_millis(config.ws_recheck_ms),
        sessions,
        login_limits: config.login_limits,
        edge: state::Edge {
            request_timeout: std::time::Duration::from_millis(config.request_timeout_ms),
            header_timeout: std::time::Duration::from_millis(config.header_timeout_ms),
            max_connections: config.max_connections,
            max_connections_per_address: config.max_connections_per_address,
            trust_forwarded_for: config.trust_forwarded_for,
        },
        privacy: state::Privacy { min_group: config.report_min_group, keys: std::sync::Arc::new(keys) },
        imports: state::Imports {
            max_bytes: config.import_max_bytes,
            idle_timeout: std::time::Duration::from_millis(config.import_idle_ms),
            retention_days: config.import_retention_days,
        },
        matching: service::access::budget::MatchBudget::new(config.match_budget_per_hour),
        webhooks: config.webhooks,
        anonymous_sockets: crate::addresses::PerAddress::new(config.max_anonymous_sockets_per_address),
        metrics_token: config.metrics_token.as_deref().map(std::sync::Arc::from),
        documents: std::sync::Arc::new(match &config.trusted_documents {
            Some(manifest) => documents::Documents::only(manifest.as_ref().clone()),
            None => documents::Documents::open(),
        }),
        heavy: service::access::heavy::HeavyReads::with_replica(
            config.heavy_reads,
            std::time::Duration::from_secs(5),
            service::kernel::db::heavy_pool(
                &config.database_url,
                u32::try_from(config.heavy_reads).unwrap_or(u32::MAX),
            )
            .await
            .map_err(|e| format!("cannot open database: {e}"))?,
            replica,
        ),
    }))
}

/// The read replica of `CRM_READ_DATABASE_URL`, watched from now on (`service::kernel::replica`).
/// Connected lazily: a replica down at start is an unusable replica, not a failed start.
async fn read_replica(
    config: &Config,
    primary: &sea_orm::DatabaseConnection,
) -> Result<Option<service::kernel::replica::Replica>, String> {
    let Some(url) = &config.read_database_url else { return Ok(None) };
    if primary.get_database_backend() != sea_orm::DatabaseBackend::Postgres || !url.starts_with("postgres") {
        return Err("CRM_READ_DATABASE_URL needs PostgreSQL, for the replica and for DATABASE_URL".into());
    }
    // Heavy reads, searches (interactive, as many as the main pool serves) and the watcher.
    let size = u32::try_from(config.heavy_reads.saturating_add(1)).unwrap_or(u32::MAX).saturating_add(config.pool_size);
    let mut options = sea_orm::ConnectOptions::new(url.clone());
    options
        .max_connections(size)
        .min_connections(0)
        .connect_timeout(std::time::Duration::from_secs(2))
        .acquire_timeout(std::time::Duration::from_secs(2))
        .test_before_acquire_if_idle_for(std::time::Duration::from_secs(60))
        .connect_lazy(true)
        .sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.map_err(|e| format!("CRM_READ_DATABASE_URL: {e}"))?;
    let replica =
        service::kernel::replica::Replica::new(db, std::time::Duration::from_millis(config.replica_max_lag_ms));
    // The watcher's first tick measures at once; until then heavy reads use the primary
    // (a replica down at start does not hold the start up).
    replica.watch(primary.clone());
    Ok(Some(replica))
}

/// The data keys: `CRM_DATA_KEY`, or on SQLite a key file beside the database (created on
/// first start). PostgreSQL is a production store: it refuses to start without the key.
///
/// # Errors
/// A message for the operator.
pub fn data_keys(config: &Config) -> Result<service::kernel::vault::Keyring, String> {
    if let Some(spec) = &config.data_key {
        return service::kernel::vault::Keyring::parse(spec);
    }
    if !config.database_url.starts_with("sqlite:") {
        return Err("CRM_DATA_KEY is required with PostgreSQL: it seals ID numbers and addresses at rest. \
             Make one with `crm data-key new` and keep it in your secret store (README, PostgreSQL)."
            .into());
    }
    let Some(path) = sqlite_path(&config.database_url).filter(|_| !config.database_url.contains("mode=memory")) else {
        tracing::warn!("CRM_DATA_KEY is not set: an in-memory database gets a key that dies with the process");
        return service::kernel::vault::Keyring::parse(&service::kernel::vault::Keyring::new_spec("memory"));
    };
    let file = std::path::PathBuf::from(format!("{path}.key"));
    tracing::warn!(
        file = %file.display(),
        "CRM_DATA_KEY is not set: using the key file beside the database; back it up with the database (without it, sealed fields cannot be read) or set CRM_DATA_KEY"
    );
    service::kernel::vault::Keyring::from_file(&file)
}

/// The path of an SQLite database file, if the URL names one.
fn sqlite_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//").split('?').next()?;
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// Makes the SQLite files readable by their owner only: they hold personal data and, when
/// `CRM_JWT_SECRET` is not set, the token-signing secret. Best effort (logged).
fn restrict_sqlite_files(url: &str) {
    #[cfg(unix)]
    if let Some(path) = sqlite_path(url) {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{path}{suffix}");
            if std::path::Path::new(&file).exists()
                && let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file, error = %e, "cannot make the database file private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = url;
}

/// On an empty database, creates the first admin (and a head-office department).
async fn ensure_first_admin(db: &DatabaseConnection, config: &Config) -> Result<(), String> {
    if service::access::user::any(db).await.map_err(|e| e.to_string())? {
        return Ok(());
    }
    let email = config.admin_email.clone().unwrap_or_else(|| "admin@localhost".into());
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.clone(), false),
        None => (service::kernel::random_secret()[..20].to_string(), true),
    };
    let dept = service::access::department::find_or_create_by_name(db, "总部").await.map_err(|e| e.to_string())?;
    let new = service::access::user::NewUser {
        email: email.clone(),
        name: "Administrator".into(),
        password: password.clone(),
        role: entity::enums::Role::Admin,
        department_id: dept.id,
    };
    match service::access::user::bootstrap(db, new).await {
        Ok(_) if generated => {
            println!("Created the first admin: {email} / {password}  (shown once; change it)");
            Ok(())
        }
        Ok(_) => Ok(()),
        // Another instance created it at the same moment.
        Err(service::error::AppError::Duplicate { .. }) => Ok(()),
        Err(e) => Err(format!("cannot create the first admin: {e}")),
    }
}

/// Serves until `shutdown` resolves (see [`serve_on`]).
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    state: AppState,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    serve_on(listener, state, shutdown).await
}

pub use server::{ConnectionSlot, serve_on};

/// Serves `GET /metrics` (no token) on an address of its own (`CRM_METRICS_LISTEN`), for
/// a scraper on a network the API's clients do not reach.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve_metrics(state: &AppState, address: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|axum::extract::State(state): axum::extract::State<AppState>| async move {
                http::metrics_text(&state).await
            }),
        )
        .with_state(state.clone());
    tracing::info!(%address, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

/// One tick of the care scheduler at `at`: evaluates the reminder rules of the days not
/// yet evaluated and raises `reminderDue` for the reminders it claimed. The scheduler
/// calls it with the current time; tests call it with the time they need.
///
/// # Errors
/// Database errors.
pub async fn care_tick(
    state: &AppState,
    at: chrono::DateTime<chrono::Utc>,
) -> service::error::AppResult<service::care::Tick> {
    service::care::tick(&state.db, &state.events, at).await
}

/// Re-seals, in the background, the sensitive fields not under the current data key (plain
/// values from before they were sealed, values under a rotated-out key): see
/// [`service::personal::seal::reseal`]. Safe on every instance at once.
pub fn spawn_reseal(state: &AppState) {
    let (db, vault) = (state.db.clone(), state.privacy.keys.clone());
    tokio::spawn(async move {
        match service::personal::seal::reseal(&db, &vault).await {
            Ok(done) if done == service::personal::seal::Resealed::default() => {}
            Ok(done) => tracing::info!(
                contacts = done.contacts,
                customers = done.customers,
                audit_rows = done.audit_rows,
                "sealed fields re-sealed"
            ),
            Err(e) => tracing::error!(error = %e, "re-sealing sensitive fields stopped"),
        }
    });
}

/// Runs the background jobs until the process ends: the care tick every 30 seconds, the
/// daily time-based reclassification, the webhook worker (`webhooks.rs`), and hourly the
/// removal of expired refresh tokens, stale login counters, settled webhook deliveries and
/// import runs past their retention. Every instance may run them: a day's rules and
/// reclassification run once across instances, and each due reminder is announced once.
pub fn spawn_scheduler(state: &AppState, hour_utc: u32) {
    if let Err(e) = webhooks::spawn(state) {
        tracing::error!(error = %e, "webhooks will not be delivered");
    }
    let db = state.db.clone();
    let care = state.clone();
    let housekeeping = state.db.clone();
    let import_days = state.imports.retention_days;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let at = chrono::Utc::now();
            match service::access::login::prune(&housekeeping, at).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions and login counters removed"),
                Err(e) => tracing::error!(error = %e, "session housekeeping failed"),
            }
            match service::transfer::import::prune(&housekeeping, at, import_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, days = import_days, "import runs past their retention removed"),
                Err(e) => tracing::error!(error = %e, "import housekeeping failed"),
            }
            match service::webhook::delivery::prune(&housekeeping, at).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "settled webhook deliveries past their retention removed"),
                Err(e) => tracing::error!(error = %e, "webhook housekeeping failed"),
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let ticked = care_tick(&care, chrono::Utc::now()).await;
            metrics::histogram!("crm_care_tick_seconds").record(started.elapsed().as_secs_f64());
            match ticked {
                Ok(t) if !t.evaluated.is_empty() || !t.delivered.is_empty() => {
                    tracing::info!(days = ?t.evaluated, created = t.created, delivered = t.delivered.len(), "care tick");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "care tick failed"),
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let now = chrono::Utc::now();
            if chrono::Timelike::hour(&now) < hour_utc {
                continue;
            }
            let started = std::time::Instant::now();
            match service::classification::daily_pass(&db, now.date_naive()).await {
                Ok(true) => {
                    metrics::histogram!("crm_reclassification_seconds").record(started.elapsed().as_secs_f64());
                    tracing::info!("daily reclassification done");
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "daily reclassification failed"),
            }
        }
    });
}
